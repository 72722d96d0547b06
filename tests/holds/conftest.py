from tests.meters.conftest import metered

__all__ = ["metered"]
