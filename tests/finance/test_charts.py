"""SVG charts: bar heights proportional to the values, rounded ticks, empty and negative data,
escaped text; and the revenue figures shaped per currency and month, as tables and CSV."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET

import pytest

from gateway.errors import UpstreamRejected, UpstreamUnavailable
from gateway.finance import revenue, revenue_output
from gateway.finance.charts import MAX_BAR, Series, bar_chart, compact, line_chart, ticks

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup: str) -> ET.Element:
    return ET.fromstring(markup)


def _bars(root: ET.Element) -> list[ET.Element]:
    return root.findall(f"{SVG}rect[@data-value]")


def test_bar_heights_are_proportional_to_the_values() -> None:
    points = [("Jan 2025", 10.0), ("Feb 2025", 40.0), ("Mar 2025", 25.0)]
    root = _parse(
        bar_chart([p[0] for p in points], [Series("MRR", [p[1] for p in points])], title="MRR")
    )

    bars = _bars(root)
    heights = [float(b.attrib["height"]) for b in bars]
    bottoms = {round(float(b.attrib["y"]) + float(b.attrib["height"]), 2) for b in bars}

    assert len(bars) == 3
    assert heights[1] == pytest.approx(4 * heights[0], abs=0.05)
    assert heights[2] == pytest.approx(2.5 * heights[0], abs=0.05)
    assert len(bottoms) == 1  # every bar stands on the zero line
    lefts = [float(b.attrib["x"]) for b in bars]
    assert lefts == sorted(lefts)  # in the labels' order


def test_few_months_keep_bars_narrow_and_centred_on_their_label() -> None:
    root = _parse(bar_chart(["Jan 2025", "Feb 2025"], [Series("MRR", [1.0, 2.0])], title="MRR"))

    bars = _bars(root)
    labels = root.findall(f"{SVG}text[@class='label']")

    assert [float(b.attrib["width"]) for b in bars] == [MAX_BAR, MAX_BAR]
    for bar, label in zip(bars, labels, strict=True):
        centre = float(bar.attrib["x"]) + float(bar.attrib["width"]) / 2
        assert centre == pytest.approx(float(label.attrib["x"]), abs=0.01)


def test_ticks_are_rounded_and_cover_the_values_and_zero() -> None:
    assert ticks(0, 95) == [0, 25, 50, 75, 100]
    assert ticks(3, 8) == [0, 2, 4, 6, 8]
    assert ticks(-30, 100) == [-50, 0, 50, 100]
    assert ticks(0, 0.37) == [0, 0.1, 0.2, 0.3, 0.4]
    assert ticks(-7, -2) == [-8, -6, -4, -2, 0]
    assert ticks(0, 0) == [0, 1]
    assert compact(12_500) == "12.5k"
    assert compact(2_000_000) == "2M"
    assert compact(-250) == "-250"


def test_the_axis_shows_the_ticks_and_the_month_labels() -> None:
    root = _parse(bar_chart(["Jan 2025", "Feb 2025"], [Series("MRR", [0.0, 95.0])], title="MRR"))

    tick_texts = [t.text for t in root.findall(f"{SVG}text[@class='tick']")]
    labels = ["".join(t.itertext()) for t in root.findall(f"{SVG}text[@class='label']")]

    assert tick_texts == ["0", "25", "50", "75", "100"]
    assert labels == ["Jan2025", "Feb2025"]  # month and year on two lines
    assert len(root.findall(f"{SVG}line[@class='zero']")) == 1


def test_many_months_label_every_other_one_but_keep_one_bar_each() -> None:
    months = [f"M{n} 2025" for n in range(24)]
    root = _parse(bar_chart(months, [Series("MRR", [1.0] * 24)], title="MRR"))

    assert len(_bars(root)) == 24
    assert 1 < len(root.findall(f"{SVG}text[@class='label']")) < 24


def test_a_bar_tells_its_label_and_value() -> None:
    root = _parse(
        bar_chart(["Jan 2025"], [Series("MRR", [12.5])], title="MRR", fmt=lambda v: f"{v:.2f} USD")
    )

    [bar] = _bars(root)
    assert bar.findtext(f"{SVG}title") == "Jan 2025: 12.50 USD"
    assert root.findtext(f"{SVG}title") == "MRR"
    assert root.attrib["role"] == "img"
    assert root.attrib["aria-labelledby"] == "chart-title"


def test_negative_values_hang_below_the_zero_line() -> None:
    root = _parse(bar_chart(["a", "b"], [Series("x", [-20.0, 40.0])], title="t"))

    low, high = _bars(root)
    zero = float(root.find(f"{SVG}line[@class='zero']").attrib["y1"])  # type: ignore[union-attr]

    assert float(low.attrib["y"]) == pytest.approx(zero)
    assert float(high.attrib["y"]) + float(high.attrib["height"]) == pytest.approx(zero)
    assert float(high.attrib["height"]) == pytest.approx(2 * float(low.attrib["height"]), abs=0.05)


def test_empty_and_zero_data_draw_an_axis_and_say_so() -> None:
    empty = _parse(bar_chart([], [Series("MRR", [])], title="MRR"))
    zeros = _parse(bar_chart(["Jan 2025"], [Series("MRR", [0.0])], title="MRR"))

    assert _bars(empty) == []
    assert empty.findtext(f"{SVG}text[@class='empty']") == "No data"
    [bar] = _bars(zeros)
    assert float(bar.attrib["height"]) == 0
    assert [t.text for t in zeros.findall(f"{SVG}text[@class='tick']")] == ["0", "1"]


def test_text_is_escaped() -> None:
    nasty = '<script>alert("x")</script> & co'
    markup = bar_chart(
        [nasty], [Series(nasty, [1.0], css='a"b')], title=nasty, ident='x" onload="y'
    )
    line = line_chart([nasty], Series(nasty, [1.0]), title=nasty)

    assert "<script>" not in markup and "<script>" not in line
    assert 'onload="' not in markup
    root = _parse(markup)
    assert root.findtext(f"{SVG}title") == nasty
    assert _bars(root)[0].findtext(f"{SVG}title") == f"{nasty}: 1"


def test_several_series_stand_side_by_side_with_a_legend() -> None:
    series = [Series("Paid", [30.0, 0.0], "paid"), Series("Failed", [10.0, 20.0], "failed")]
    root = _parse(bar_chart(["Jan 2025", "Feb 2025"], series, title="Collections"))

    bars = _bars(root)
    assert [b.attrib["class"] for b in bars] == ["bar paid", "bar failed"] * 2
    assert bars[0].findtext(f"{SVG}title") == "Jan 2025 · Paid: 30"
    assert float(bars[0].attrib["height"]) == pytest.approx(
        3 * float(bars[1].attrib["height"]), abs=0.05
    )
    assert [t.text for t in root.findall(f"{SVG}text[@class='legend']")] == ["Paid", "Failed"]


def test_a_line_has_one_point_per_label_at_the_values_height() -> None:
    root = _parse(
        line_chart(["a", "b", "c"], Series("Overdue", [0.0, 50.0, 100.0]), title="Overdue")
    )

    points = root.findall(f"{SVG}circle")
    ys = [float(p.attrib["cy"]) for p in points]
    zero = float(root.find(f"{SVG}line[@class='zero']").attrib["y1"])  # type: ignore[union-attr]

    assert len(points) == 3
    assert ys[0] == pytest.approx(zero)
    assert zero - ys[2] == pytest.approx(2 * (zero - ys[1]), abs=0.05)
    assert len(root.findall(f"{SVG}polyline")) == 1
    assert (
        len(_parse(line_chart(["a"], Series("x", [1.0]), title="t")).findall(f"{SVG}polyline")) == 0
    )


ANSWERS: dict[str, revenue.Answer] = {
    "mrr": [
        {"month": "2025-01-01T00:00:00.000Z", "amount_cents": 1000, "currency": "USD"},
        {"month": "2025-01-01T00:00:00.000Z", "amount_cents": 500.5, "currency": "EUR"},
        {"month": "2025-02-01T00:00:00.000Z", "amount_cents": None, "currency": None},
        {"month": "2025-03-01T00:00:00.000Z", "amount_cents": 2000, "currency": "USD"},
    ],
    "gross-revenue": [
        {
            "month": "2025-01-01T00:00:00.000Z",
            "amount_cents": 1000,
            "currency": "USD",
            "invoices_count": 1,
        },
        {
            "month": "2025-03-01T00:00:00.000Z",
            "amount_cents": 700,
            "currency": "USD",
            "invoices_count": 1,
        },
        {
            "month": "2025-03-01T00:00:00.000Z",
            "amount_cents": 300,
            "currency": "USD",
            "invoices_count": 2,
        },
    ],
    "collections": [
        {
            "month": "2025-01-01T00:00:00.000Z",
            "payment_status": "succeeded",
            "invoices_count": 1,
            "amount_cents": 1000,
            "currency": "USD",
        },
        {
            "month": "2025-02-01T00:00:00.000Z",
            "payment_status": None,
            "invoices_count": 0,
            "amount_cents": 0,
            "currency": None,
        },
        {
            "month": "2025-03-01T00:00:00.000Z",
            "payment_status": "failed",
            "invoices_count": 2,
            "amount_cents": 1000,
            "currency": "USD",
        },
    ],
    "overdue": [
        {
            "month": "2025-03-01T00:00:00.000Z",
            "amount_cents": 1000,
            "currency": "USD",
            "lago_invoice_ids": ["x"],
        },
    ],
}


def test_figures_are_shaped_per_currency_over_every_month() -> None:
    shaped = revenue.shape(ANSWERS)

    assert shaped.months == ["2025-01", "2025-02", "2025-03"]
    assert shaped.currencies == ["EUR", "USD"]
    mrr, gross, collections, overdue = shaped.sections
    assert [(b.currency, [r["mrr"] for r in b.rows]) for b in mrr.blocks] == [
        ("EUR", [501, 0, 0]),  # a fraction of a cent is rounded half up
        ("USD", [1000, 0, 2000]),
    ]
    usd = gross.blocks[1]
    assert usd.rows[2] == {"invoices": 3, "gross_revenue": 1000}  # two billing entities
    assert collections.blocks[1].rows[2]["failed_invoices"] == 2
    assert collections.blocks[1].rows[0]["paid_amount"] == 1000
    assert [r["overdue_balance"] for r in overdue.blocks[1].rows] == [0, 0, 1000]
    assert [b.currency for b in revenue.shape(ANSWERS, "EUR").sections[0].blocks] == ["EUR"]


def test_tables_and_csv_show_major_units_with_the_currency() -> None:
    section = revenue.shape(ANSWERS).sections[2]

    usd = revenue_output.table(section.blocks[1])
    rows = list(csv.DictReader(io.StringIO(revenue_output.csv_text(section))))

    assert usd[0] == ("Jan 2025", ["1", "10.00 USD", "0", "0.00 USD", "0", "0.00 USD"])
    assert len(rows) == 6  # two currencies, three months
    assert rows[3] == {
        "month": "2025-01",
        "currency": "USD",
        "paid_invoices": "1",
        "paid_amount": "10.00",
        "failed_invoices": "0",
        "failed_amount": "0.00",
        "pending_invoices": "0",
        "pending_amount": "0.00",
    }


def test_a_failed_read_leaves_the_others() -> None:
    answers = {
        **ANSWERS,
        "mrr": UpstreamUnavailable("down"),
        "overdue": UpstreamRejected(403, {"code": "feature_unavailable"}),
    }

    shaped = revenue.shape(answers)

    assert shaped.currencies == ["USD"]
    assert shaped.sections[0].problem == "Lago did not answer; try again shortly."
    assert shaped.sections[3].problem == "Lago refused this read (403 feature_unavailable)."
    assert not shaped.unavailable
    down = dict.fromkeys(ANSWERS, UpstreamUnavailable("down"))
    assert revenue.shape(down).unavailable  # type: ignore[arg-type]


def test_the_filters_are_checked() -> None:
    assert revenue.parse_query({}) == (revenue.Query(None, 12), None)
    assert revenue.parse_query({"currency": "eur", "months": "24"}) == (
        revenue.Query("EUR", 24),
        None,
    )
    query, error = revenue.parse_query({"currency": "<b>", "months": "7"})
    assert query == revenue.Query(None, 12)
    assert error == "Some filters are not valid: currency, months."
