"""A synthetic, deterministic model of parcel orders and their tracking lifecycles.

Pure logic, no I/O: `WorkloadModel.advance(until)` returns what happened in the source up to
`until` (new orders, scan events, tracking-state changes). The writer turns that into SQL.

What makes it realistic for a timestamp poller:
* partners upload orders in batches, so hundreds of orders share one `add_time` second;
* line-haul departures and delivery runs leave at fixed slots, so many scan events share one
  `pathTime` second;
* a parcel's tracking state is updated several times over days, and some fail delivery.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from decimal import Decimal

# Tracking states, as the source stores them (uni_tracking_info.state).
CREATED, PICKED_UP, IN_TRANSIT, OUT_FOR_DELIVERY, DELIVERED, EXCEPTION, RETURNED = range(7)

CITIES = (
    "Shanghai", "Beijing", "Guangzhou", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan",
    "Xian", "Nanjing", "Tianjin", "Suzhou", "Chongqing", "Xiamen", "Qingdao",
)
CONSIGNEES = ("Wang Wei", "Li Na", "Zhang Min", "Liu Yang", "Chen Jie", "Yang Fang", "Zhao Lei", "Huang Li")
CARRIERS = ("KSEXP", "KSECO", "KSINT")
LINE_HAUL_SLOT = 7200  # departures leave hubs every two hours, on the hour
DELIVERY_SLOT = 1800  # delivery runs start every half hour


@dataclass(frozen=True)
class WorkloadParams:
    orders_per_minute: float = 20.0
    partners: int = 40
    burst_probability: float = 0.02
    """Chance that an arrival is a partner's batch upload (many orders in one second)."""
    burst_mean_size: int = 200
    scan_interval_minutes: float = 180.0
    """Mean time between two scans of a parcel."""
    failure_probability: float = 0.06


@dataclass(frozen=True)
class ScanEvent:
    order_id: int
    trace_seq: int
    path_time: int
    event_code: str
    state: int
    location: str
    facility: str


@dataclass
class Batch:
    """What happened in the source over one slice of time."""

    orders: list[dict] = field(default_factory=list)
    scans: list[ScanEvent] = field(default_factory=list)
    # order_id -> the tracking row as it stands at the end of the slice (coalesced).
    tracking: dict[int, dict] = field(default_factory=dict)
    written_at: int | None = None
    """Set for live writes: the source-clock second the batch is written. An application stamps its
    rows when it writes them, so a batch held up by an outage carries the time it finally commits,
    never the older time it was first tried (a poller's window buffer only covers commit delays)."""

    def stamp(self, t: int) -> int:
        """The cursor value of a row that happened at `t`."""
        return t if self.written_at is None else max(t, self.written_at)

    def __len__(self) -> int:
        return len(self.orders) + len(self.scans)


def _next_slot(t: float, slot: int) -> int:
    return (int(t) // slot + 1) * slot


class WorkloadModel:
    """Seeded generator of orders and lifecycles; the same seed, start and ids give the same rows."""

    def __init__(self, params: WorkloadParams, seed: int, start: int, first_order_id: int) -> None:
        if params.orders_per_minute <= 0:
            raise ValueError("orders_per_minute must be positive")
        self.p = params
        self.rng = random.Random(seed)
        self.clock = float(start)
        self.next_order_id = first_order_id
        mean_group = (1 - params.burst_probability) + params.burst_probability * params.burst_mean_size
        self._arrival_rate = params.orders_per_minute / 60.0 / mean_group  # arrivals per second
        self._next_arrival = self.clock + self.rng.expovariate(self._arrival_rate)
        # Pending scan events, ordered by (path_time, order_id, trace_seq).
        self._pending: list[tuple[int, int, int, ScanEvent]] = []
        self._tracking: dict[int, dict] = {}  # order_id -> current tracking row (open orders only)

    @property
    def pending_events(self) -> int:
        return len(self._pending)

    def advance(self, until: int) -> Batch:
        """Everything that happens in [clock, until): new orders, then due scan events."""
        batch = Batch()
        while self._next_arrival < until:
            t = int(self._next_arrival)
            size = 1
            if self.rng.random() < self.p.burst_probability:
                size = max(2, int(self.rng.expovariate(1 / self.p.burst_mean_size)))
            partner = self._pick_partner()
            for _ in range(size):
                self._new_order(t, partner, batch)
            self._next_arrival += self.rng.expovariate(self._arrival_rate)
        while self._pending and self._pending[0][0] < until:
            _, _, _, ev = heapq.heappop(self._pending)
            batch.scans.append(ev)
            row = self._tracking[ev.order_id]
            row.update(
                state=ev.state, last_event_code=ev.event_code, last_location=ev.location,
                scan_count=ev.trace_seq, update_time=ev.path_time,
            )
            batch.tracking[ev.order_id] = dict(row)
            if ev.state in (DELIVERED, RETURNED):
                del self._tracking[ev.order_id]
        self.clock = float(until)
        return batch

    def _pick_partner(self) -> int:
        # A few large partners and a long tail, as marketplaces have.
        return min(self.p.partners, int(self.rng.paretovariate(1.2)))

    def _new_order(self, t: int, partner: int, batch: Batch) -> None:
        rng = self.rng
        oid = self.next_order_id
        self.next_order_id += 1
        origin, dest = rng.choice(CITIES), rng.choice(CITIES)
        goods = Decimal(rng.randint(500, 90000)) / 100
        fee = Decimal(rng.choice((800, 1000, 1200, 1500, 2000))) / 100
        batch.orders.append(
            {
                "order_id": oid, "order_sn": f"KS{oid:014d}", "partner_id": partner,
                "user_id": rng.randint(10_000, 9_999_999), "order_status": 1, "shipping_status": 0,
                "pay_status": 2, "consignee": rng.choice(CONSIGNEES), "country": "CN",
                "province": dest, "city": dest, "district": f"District {rng.randint(1, 16)}",
                "address": f"{rng.randint(1, 999)} {rng.choice(('Renmin', 'Jiefang', 'Zhongshan', 'Nanjing'))} Road",
                "zipcode": f"{rng.randint(100000, 899999)}", "mobile": f"13{rng.randint(100000000, 999999999)}",
                "shipping_id": 1, "shipping_name": "Kuaisong Express", "goods_amount": goods,
                "shipping_fee": fee, "order_amount": goods + fee,
                "weight_kg": Decimal(rng.randint(100, 30000)) / 1000, "add_time": t,
            }
        )
        tracking = {
            "order_id": oid, "tracking_number": f"{rng.choice(CARRIERS)}{oid:012d}CN",
            "carrier_code": "KS", "state": CREATED, "sub_state": "", "last_event_code": "CREATED",
            "last_location": origin, "origin_country": "CN", "destination_country": "CN",
            "scan_count": 0, "add_time": t, "update_time": t,
        }
        self._tracking[oid] = tracking
        batch.tracking[oid] = dict(tracking)
        for ev in self._lifecycle(oid, t, origin, dest):
            heapq.heappush(self._pending, (ev.path_time, ev.order_id, ev.trace_seq, ev))

    def _lifecycle(self, oid: int, t0: int, origin: str, dest: str) -> list[ScanEvent]:
        rng, gap = self.rng, self.p.scan_interval_minutes * 60
        steps: list[tuple[float, str, int, str, str]] = []  # (time, code, state, location, facility)
        t = t0 + rng.expovariate(1 / gap)
        steps.append((t, "PICKED_UP", PICKED_UP, origin, f"{origin} pickup"))
        hubs = [origin, *rng.sample(CITIES, rng.randint(0, 2)), dest]
        for hub in hubs:
            t += rng.expovariate(1 / gap)
            steps.append((t, "ARRIVED_HUB", IN_TRANSIT, hub, f"{hub} hub"))
            t = _next_slot(t, LINE_HAUL_SLOT)
            steps.append((t, "DEPARTED_HUB", IN_TRANSIT, hub, f"{hub} hub"))
        t += rng.expovariate(1 / gap)
        steps.append((t, "ARRIVED_STATION", IN_TRANSIT, dest, f"{dest} station"))
        attempts = 2 if rng.random() < self.p.failure_probability else 1
        for attempt in range(attempts):
            t = _next_slot(t + rng.expovariate(2 / gap), DELIVERY_SLOT)
            steps.append((t, "OUT_FOR_DELIVERY", OUT_FOR_DELIVERY, dest, f"{dest} station"))
            t += rng.expovariate(2 / gap)
            if attempt + 1 < attempts:
                steps.append((t, "DELIVERY_FAILED", EXCEPTION, dest, f"{dest} station"))
        final = (DELIVERED, "DELIVERED") if attempts == 1 or rng.random() < 0.7 else (RETURNED, "RETURNED")
        steps.append((t, final[1], final[0], dest, f"{dest} station"))
        return [
            ScanEvent(oid, seq, int(st[0]), st[1], st[2], st[3], st[4])
            for seq, st in enumerate(steps, start=1)
        ]
