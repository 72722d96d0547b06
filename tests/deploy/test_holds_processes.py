"""Holds are race-free across processes: two ``gateway serve`` processes on one PostgreSQL
database, 50 concurrent holds for the last 10 included photos, 10 holds and 40 refusals."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deploy.test_scale_out import admin_key
from tests.support.cluster import Cluster, wait_until_up

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(backend: str, database_url: str, tmp_path: Path) -> Iterator[Cluster]:
    if backend != "postgres":
        pytest.skip("several processes share one database on PostgreSQL only")
    cluster = Cluster(tmp_path, database_url, {"GATEWAY_API_KEY_CACHE_SECONDS": "0"})
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_fifty_holds_through_two_processes_for_ten_photos_give_ten(
    cluster: Cluster, database_url: str
) -> None:
    cluster.start_emulator()
    apis = [cluster.start_api("api-1"), cluster.start_api("api-2")]
    cluster.cli("catalog", "apply")
    key = await admin_key(database_url)
    for api in apis:
        wait_until_up(api, "/healthz")
    auth = {"Authorization": f"Bearer {key}"}
    clients = [httpx.AsyncClient(base_url=api.url or "", headers=auth, timeout=30) for api in apis]
    try:
        customer = {"customer": {"external_id": "twin", "currency": "USD"}}
        assert (await clients[0].post("/api/v1/customers", json=customer)).status_code == 200
        subscription = {"subscription": {"external_customer_id": "twin",
                        "plan_code": "free_monthly", "external_id": "sub_twin"}}  # fmt: skip
        created = await clients[0].post("/api/v1/subscriptions", json=subscription)
        assert created.status_code == 200, created.text

        async def one(n: int) -> int:
            body = {"hold": {"external_subscription_id": "sub_twin", "code": "photo_generation",
                             "transaction_id": f"gen-{n}"}}  # fmt: skip
            return (await clients[n % 2].post("/gateway/holds", json=body)).status_code

        statuses = Counter(await asyncio.gather(*(one(n) for n in range(50))))
        assert statuses == {201: 10, 402: 40}
    finally:
        for client in clients:
            await client.aclose()
