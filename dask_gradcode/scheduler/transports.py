"""How a round's tasks reach the workers and their replies come back.

Two transports run the same worker code (:mod:`~dask_gradcode.scheduler.worker`)
on the same placed shards:

``"futures"``
    One pinned Dask task per worker per round, collected with
    ``distributed.as_completed``.  Every round goes client -> scheduler ->
    worker -> scheduler -> client and shows in the dashboard's task stream.
``"direct"``
    One Dask actor per worker, created on the worker that holds its shard
    (it keeps a reference to the shard, no copy).  A round calls the actor's
    method over the client's own connection to the worker -- Dask's actor
    protocol, what ``distributed.Actor`` does when the client talks to
    workers directly -- so the scheduler is not on the round's path.  Replies
    are collected on the client's event loop as they arrive.  A worker the
    client cannot reach directly is called through the scheduler's proxy
    instead (with a warning).

Both satisfy :class:`Transport`: ``bind`` each worker's shard and
:class:`~dask_gradcode.scheduler.protocol.RoundContext` after a placement,
``ship_weights`` once per round (each transport says itself how weights
travel), ``submit`` one
:class:`~dask_gradcode.scheduler.protocol.RoundRequest` per worker, and
``release`` what a decoded round no longer needs.  Both hand the collection
loops (:mod:`~dask_gradcode.scheduler.rounds`) an :class:`Arrivals` object:
``add(handle)`` and ``wait(timeout)``, which returns ``(handle, kind,
value)`` for each finished call, ``kind`` being ``"reply"``, ``"error"`` (the
task raised ``value``) or ``"lost"`` (its worker is gone).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import logging
import math
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from distributed import Client, Future, as_completed, get_worker
from distributed.protocol import pickle, to_serialize

from dask_gradcode.scheduler.clients import (
    BEFORE_EMBEDDED_CLOSE,
    CLOSE_WAIT,
    bounded_run,
    is_embedded,
    settle,
)
from dask_gradcode.scheduler.naming import name_addresses
from dask_gradcode.scheduler.protocol import RoundContext, RoundRequest
from dask_gradcode.scheduler.records import warn_caller
from dask_gradcode.scheduler.worker import (
    Shard,
    mark_decoded,
    note_submission,
    run_round,
)

__all__ = [
    "EMBED_WEIGHTS_MAX_BYTES",
    "TRANSPORTS",
    "Arrivals",
    "DirectTransport",
    "FuturesTransport",
    "RoundHost",
    "RoundServer",
    "Transport",
    "TransportFallbackWarning",
    "check_transport",
    "default_transport",
    "make_transport",
]

logger = logging.getLogger("dask_gradcode")

#: The transports, the default first.
TRANSPORTS = ("direct", "futures")

#: Seconds a direct call may take to connect before the worker is called
#: through the scheduler instead.
CONNECT_TIMEOUT = 5.0

#: Futures transport: weights up to this size travel inside each task; larger
#: ones are scattered once per round to the workers (a direct client-to-worker
#: transfer each), so the scheduler does not relay ``n`` copies.  Read at each
#: round, so it can be patched here.
EMBED_WEIGHTS_MAX_BYTES = 1024 * 1024

#: Seconds a scatter of the weights may take before the round sends them
#: inside its tasks instead (a worker hung during the broadcast).
SCATTER_TIMEOUT = 10.0

#: Direct transport: weights larger than this travel as their own message
#: frame (Dask's zero-copy serialisation) instead of inside each call's pickle.
FRAME_WEIGHTS_BYTES = 1024 * 1024

#: A shard whose last round computed in less than this many seconds computes
#: the next one on the worker's event loop (with no injected delay to sleep).
INLINE_SECONDS = 0.005


class TransportFallbackWarning(UserWarning):
    """The direct transport could not do something and fell back."""


class Arrivals(Protocol):
    """One round's finished calls, as they come."""

    def add(self, handle: Any) -> None:
        """Start collecting (and, for direct calls, start) ``handle``."""
        ...

    def wait(self, timeout: float) -> list[tuple[Any, str, Any]]:
        """Calls finished within ``timeout`` seconds: ``(handle, kind, value)``."""
        ...


class Transport(Protocol):
    """How a run's rounds reach its workers and their replies come back."""

    name: str
    #: Whether ``release`` blocks (then the caller runs it in the background).
    releases_in_background: bool
    #: Whether rounds go through the scheduler (a stalled scheduler stalls them).
    through_scheduler: bool

    def bind(
        self,
        shards: list[Future],
        addresses: Sequence[str],
        contexts: Sequence[RoundContext],
    ) -> set[int]:
        """Use these placed shards from now on; returns the workers that failed."""
        ...

    def ready(self, worker: int) -> bool:
        """Whether ``worker``'s endpoint is still in place."""
        ...

    def ship_weights(self, weights: np.ndarray, addresses: Sequence[str]) -> Any:
        """The weights as this round's calls carry them (once per round)."""
        ...

    def arrivals(self) -> Arrivals:
        """A collector for one round's calls."""
        ...

    def submit(self, worker: int, request: RoundRequest, weights: Any) -> Any:
        """A call of ``request`` on ``worker``; it starts when added to arrivals."""
        ...

    def release(
        self, handles: list[Any], addresses: list[str], over: tuple[str, int]
    ) -> None:
        """Drop unfinished calls; tell ``addresses`` that round ``over`` is over.

        ``over`` is ``(token, submission)``: the workers drop its calls still
        queued or running and end its injected delays.
        """
        ...

    def close(self) -> None:
        """Release the endpoints."""
        ...


# ------------------------------------------------------------------ futures
class _FutureArrivals:
    """``as_completed`` over a round's futures, fed as they are submitted."""

    def __init__(self, loop: Any) -> None:
        self._arrivals = as_completed(loop=loop, with_results=True, raise_errors=False)

    def add(self, future: Future) -> None:
        self._arrivals.add(future)

    def wait(self, timeout: float) -> list[tuple[Future, str, Any]]:
        # as_completed's own iterator timeout polls every 0.1 s: too coarse
        # for rounds of a few ms, so wait on the condition it notifies under.
        batch = self._arrivals.next_batch(block=False)
        if not batch and timeout > 0:
            with self._arrivals.thread_condition:
                if not self._arrivals.has_ready():
                    self._arrivals.thread_condition.wait(timeout)
            batch = self._arrivals.next_batch(block=False)
        return [(future, *_classify_future(future, value)) for future, value in batch]


def _classify_future(future: Future, value: Any) -> tuple[str, Any]:
    if future.status == "error":
        # as_completed hands a task's error over as (type, exception, traceback)
        return "error", value[1] if isinstance(value, tuple) else value
    if future.status == "cancelled" or isinstance(value, BaseException):
        return "lost", None  # its worker died, with its shard
    return "reply", value


class FuturesTransport:
    """Rounds as pinned Dask tasks (every round through the scheduler).

    Weights up to :data:`EMBED_WEIGHTS_MAX_BYTES` travel inside each task;
    larger ones are scattered to the round's workers once per round.  The
    worker's :class:`~dask_gradcode.scheduler.protocol.RoundContext` travels
    inside each task (a few hundred bytes).
    """

    name = "futures"
    releases_in_background = True  # cancelling and waking go through the scheduler
    through_scheduler = True

    def __init__(self, client: Client) -> None:
        self.client = client
        self._shards: list[Future] = []
        self._addresses: list[str] = []
        self._contexts: list[RoundContext] = []
        self._copies = itertools.count()

    def bind(
        self,
        shards: list[Future],
        addresses: Sequence[str],
        contexts: Sequence[RoundContext],
    ) -> set[int]:
        """Use these placed shards from now on; returns workers that failed (none)."""
        self._shards, self._addresses = list(shards), list(addresses)
        self._contexts = list(contexts)
        return set()

    def ready(self, worker: int) -> bool:
        """Whether ``worker``'s endpoint (its shard) is still in place."""
        return self._shards[worker].status == "finished"

    def ship_weights(self, weights: np.ndarray, addresses: Sequence[str]) -> Any:
        """The weights themselves, or above the size limit scattered once."""
        if weights.nbytes <= EMBED_WEIGHTS_MAX_BYTES:
            return weights
        try:
            return self.client.sync(
                self.client._scatter,
                weights,
                workers=list(addresses),
                broadcast=True,
                hash=False,
                callback_timeout=SCATTER_TIMEOUT,
            )
        except (OSError, TimeoutError):
            # A worker hung during the broadcast: send the weights inside the
            # tasks this round (slower, but bounded by the round's deadline).
            return weights

    def arrivals(self) -> _FutureArrivals:
        """A collector for one round's tasks."""
        return _FutureArrivals(self.client.loop)

    def submit(self, worker: int, request: RoundRequest, weights: Any) -> Future:
        """``request`` as a task pinned to ``worker`` (beside its shard)."""
        context = self._contexts[worker]
        prefix = "round" if request.kind == "coded" else "split"
        key = (
            f"gradcode-{prefix}-{request.iteration}-w{worker}-{context.token}-"
            f"{request.submission}"
        )
        if request.slices is not None:  # a share may have several copies
            key += f"-{next(self._copies)}"
        return self.client.submit(
            run_round,
            self._shards[worker],
            context,
            request,
            weights,
            key=key,
            workers=[self._addresses[worker]],
            allow_other_workers=False,
            pure=False,
        )

    def release(
        self, handles: list[Any], addresses: list[str], over: tuple[str, int]
    ) -> None:
        """Cancel unfinished tasks; tell their workers (blocking, bounded)."""
        try:
            self.client.cancel(handles)
        except Exception:  # noqa: BLE001 - a closing client: nothing to cancel
            return
        bounded_run(self.client, mark_decoded, *over, workers=addresses)

    def close(self) -> None:
        """Forget the shards (their owner cancels them)."""
        self._shards = []


# ------------------------------------------------------------------- direct
class RoundServer:
    """The actor of the direct transport: one worker's shard, ready for rounds.

    Created on the worker holding ``shard``; it keeps a reference to it (the
    shard is not copied) and the worker's ``context``, bound once.
    """

    def __init__(self, shard: Shard, context: RoundContext) -> None:
        self.shard = shard
        self.context = context
        self._last_compute = math.inf

    async def round(self, payload: bytes, weights: Any = None) -> bytes:
        """Run the pickled round request ``payload`` on this shard.

        Request and reply travel pickled by Dask's pickle as one bytes object
        each: Dask serialises each argument of an actor call separately,
        which costs about 70 us per argument and per worker on the client's
        event loop, more than the rest of a small round.  Large ``weights``
        come as their own frame.

        The round runs in the actor's thread, so the worker's event loop
        stays free for heartbeats and other calls; with no injected delay to
        sleep and a shard whose last round computed in under
        ``INLINE_SECONDS``, on the event loop itself: handing a
        sub-millisecond computation to a thread and back costs more than it.
        """
        request = pickle.loads(payload)
        # On the event loop, before queueing behind the actor's thread: the
        # rounds queued there before this one are over and will be dropped.
        note_submission(self.context.token, request.submission)
        compute = functools.partial(
            _as_travelling_error, run_round, self.shard, self.context, request, weights
        )
        if not self.context.sleeps and self._last_compute < INLINE_SECONDS:
            reply = compute()
        else:
            executor = get_worker().executors["actor"]
            loop = asyncio.get_running_loop()
            # The event loop's context carries the worker, so an objective's
            # distributed.get_worker() works in the actor's thread as in a task.
            context = contextvars.copy_context()
            reply = await loop.run_in_executor(executor, context.run, compute)
        self._last_compute = reply.compute_seconds
        return pickle.dumps(reply)

    async def wake(self, token: str, submission: int) -> None:
        """End injected delays of ``submission``.

        On the worker's event loop, not queued behind a sleeping round in
        the actor's thread.
        """
        mark_decoded(token, submission)

    async def ping(self) -> bool:
        """Answer at once: the client can reach this actor."""
        return True


class RoundHost:
    """A lasting actor of the embedded cluster: one worker's rounds, fit after fit.

    Creating an actor goes through the scheduler (several of Dask's message
    hops: 8-15 ms on the embedded cluster, the largest part of a small
    fit).  On the embedded cluster, whose lifetime this process owns, one
    host per worker is created once and each fit *binds* its shard to it
    with a direct call: the host looks the shard up in its worker's data
    and serves the fit's rounds by a :class:`RoundServer` until the fit
    unbinds it.
    """

    def __init__(self) -> None:
        self.servers: dict[str, RoundServer] = {}

    async def bind(self, binding: str, shard_key: str, context: RoundContext) -> bool:
        """Serve ``binding``'s rounds on the shard this worker holds as ``shard_key``."""
        shard: Shard = get_worker().data[shard_key]  # type: ignore[assignment]
        self.servers[binding] = RoundServer(shard, context)
        return True

    async def unbind(self, binding: str) -> None:
        """Forget ``binding`` (its fit is over); its shard is released with it."""
        self.servers.pop(binding, None)

    async def bindings(self) -> list[str]:
        """The bindings served now."""
        return list(self.servers)

    async def round(self, binding: str, payload: bytes, weights: Any = None) -> bytes:
        """:meth:`RoundServer.round` of ``binding``."""
        return await self.servers[binding].round(payload, weights)

    async def wake(self, binding: str, token: str, submission: int) -> None:
        """:meth:`RoundServer.wake` of ``binding``."""
        mark_decoded(token, submission)

    async def ping(self) -> bool:
        """Answer at once: the client can reach this actor."""
        return True


#: The embedded cluster's hosts, by client, then worker address.
_HOSTS: weakref.WeakKeyDictionary[Client, dict[str, Future]] = (
    weakref.WeakKeyDictionary()
)
_HOSTS_LOCK = threading.Lock()


def lasting_hosts(
    client: Client, addresses: Sequence[str], timeout: float
) -> dict[str, Future]:
    """The :class:`RoundHost` of each of ``addresses`` that is in place.

    Creates the missing ones (once per worker for the client's lifetime);
    a worker whose host could not be created is left out.
    """
    with _HOSTS_LOCK:
        hosts = _HOSTS.setdefault(client, {})
        for address in list(hosts):
            if hosts[address].status in ("error", "cancelled", "lost"):
                del hosts[address]
        missing = [a for a in addresses if a not in hosts]
        for address in missing:
            hosts[address] = _pinned_actor(
                client, RoundHost, key=f"gradcode-host-{address}", address=address
            )
        if missing:
            settle(client, [hosts[a] for a in missing], missing, timeout)
        return {
            a: hosts[a]
            for a in addresses
            if a in hosts and hosts[a].status == "finished"
        }


def _pinned_actor(
    client: Client, cls: type, *args: Any, key: str, address: str
) -> Future:
    """An actor of ``cls(*args)`` created on the worker at ``address`` only."""
    return client.submit(
        cls,
        *args,
        actor=True,
        key=key,
        workers=[address],
        allow_other_workers=False,
        pure=False,
    )


def release_lasting_hosts(client: Client, timeout: float = 1.0) -> None:
    """Release the client's :class:`RoundHost` actors and wait for it.

    Before the embedded cluster closes: an actor released by the close
    itself can still be on its way to a worker when the worker's comm
    closes, and Dask then logs the closed comm's traceback.
    """
    with _HOSTS_LOCK:
        hosts = list(_HOSTS.pop(client, {}).values())
    if not hosts or client.status != "running":
        return
    client.cancel(hosts)
    deadline = time.monotonic() + timeout
    while client.who_has(hosts) and time.monotonic() < deadline:
        time.sleep(0.005)


BEFORE_EMBEDDED_CLOSE.append(release_lasting_hosts)


def _as_travelling_error(function: Any, *args: Any) -> Any:
    """``function(*args)``; an error that cannot be pickled travels as its text.

    An actor's exception goes back to the client pickled: one that cannot be
    (it holds a lock, a socket, a local class) would break the reply and
    look like a lost worker, so it is replaced by a ``RuntimeError`` that
    names it and carries its traceback as text.
    """
    try:
        return function(*args)
    except Exception as error:
        try:
            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - any reason it cannot travel
            text = "".join(traceback.format_exception(error))
            raise RuntimeError(
                f"{type(error).__name__}: {error} (this exception cannot be "
                f"pickled, so it is sent as text; its traceback on the worker:\n"
                f"{text})"
            ) from None
        raise


class DirectCall:
    """One call of a direct round: its worker, and how to cancel it."""

    __slots__ = ("cancelled", "payload", "task", "weights", "worker")

    def __init__(self, worker: int, payload: bytes, weights: Any = None) -> None:
        self.worker = worker
        self.payload = payload
        self.weights = weights
        self.task: asyncio.Task | None = None
        self.cancelled = False


class _DirectArrivals:
    """Replies of direct calls as they arrive on the client's event loop."""

    def __init__(self, transport: DirectTransport) -> None:
        self._transport = transport
        self._ready: deque[tuple[DirectCall, str, Any]] = deque()
        self._condition = threading.Condition()

    def add(self, call: DirectCall) -> None:
        _loop(self._transport.client).add_callback(self._run, call)

    async def _run(self, call: DirectCall) -> None:
        if call.cancelled:
            return
        call.task = asyncio.current_task()
        try:
            framed = () if call.weights is None else (call.weights,)
            kind, value = await self._transport.call(
                call.worker, "round", call.payload, *framed
            )
            outcome = (kind, pickle.loads(value) if kind == "reply" else value)
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001 - the connection broke or the actor is gone
            outcome = ("lost", None)
        with self._condition:
            self._ready.append((call, *outcome))
            self._condition.notify_all()

    def wait(self, timeout: float) -> list[tuple[DirectCall, str, Any]]:
        with self._condition:
            if not self._ready and timeout > 0:
                self._condition.wait(timeout)
            batch = list(self._ready)
            self._ready.clear()
        return batch


class DirectTransport:
    """Rounds as direct calls to one actor per worker (the scheduler off the path)."""

    name = "direct"
    releases_in_background = False
    through_scheduler = False

    def __init__(
        self, client: Client, *, timeout: float = 10.0, lasting: bool = False
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.lasting = lasting
        self._actors: list[Future] = []
        self._bindings: list[str] = []  # with lasting hosts: each worker's
        self._addresses: list[str] = []
        self._proxied: set[str] = set()
        self._waking: set[asyncio.Task] = set()  # wake-ups still on their way

    # ------------------------------------------------------------ endpoints
    def bind(
        self,
        shards: list[Future],
        addresses: Sequence[str],
        contexts: Sequence[RoundContext],
    ) -> set[int]:
        """Create one actor per worker, beside its shard; returns those that failed.

        A worker whose actor cannot be created or reached (dead or hung) is
        returned, so the caller can plan it out like a failed placement.
        """
        self.close()
        self._addresses = list(addresses)
        if self.lasting:
            failed = self._bind_to_hosts(shards, addresses, contexts)
            if failed is not None:
                return failed | self._check_routes(failed)
        self._actors = [
            _pinned_actor(
                self.client,
                RoundServer,
                shard,
                context,
                key=f"gradcode-actor-{shard.key}",
                address=address,
            )
            for shard, address, context in zip(shards, addresses, contexts, strict=True)
        ]
        settle(self.client, self._actors, addresses, self.timeout)
        failed = {w for w, a in enumerate(self._actors) if a.status != "finished"}
        return failed | self._check_routes(failed)

    def _bind_to_hosts(
        self,
        shards: list[Future],
        addresses: Sequence[str],
        contexts: Sequence[RoundContext],
    ) -> set[int] | None:
        """Bind each shard to its worker's lasting host; the workers that failed.

        None when some worker has no host (the caller then creates actors).
        """
        hosts = lasting_hosts(self.client, addresses, self.timeout)
        if len(hosts) < len(addresses):
            return None
        self._actors = [hosts[a] for a in addresses]
        bindings = [str(shard.key) for shard in shards]

        async def bind_all() -> list[Any]:
            return await asyncio.gather(
                *(
                    asyncio.wait_for(
                        self.call(w, "bind", bindings[w], shard.key, contexts[w]),
                        CONNECT_TIMEOUT,
                    )
                    for w, shard in enumerate(shards)
                ),
                return_exceptions=True,
            )

        answers = self.client.sync(bind_all)
        self._bindings = bindings
        return {
            w
            for w, a in enumerate(answers)
            if not (isinstance(a, tuple) and a[0] == "reply")
        }

    def _check_routes(self, failed: set[int]) -> set[int]:
        """Probe every actor not in ``failed``; the unreachable ones.

        Warns when some are reached only through the scheduler's proxy.
        """
        addresses = self._addresses
        routes = self.client.sync(
            self._probe_all, [w for w in range(len(addresses)) if w not in failed]
        )
        proxied = sorted(self._addresses[w] for w, r in routes.items() if r == "proxy")
        if proxied:
            warn_caller(
                f"the client cannot reach {name_addresses(proxied)} directly; their "
                "direct rounds go through the scheduler's proxy (slower). Let the "
                "client connect to the workers' addresses, or use "
                "transport='futures'",
                TransportFallbackWarning,
            )
        return {w for w, route in routes.items() if route is None}

    async def _probe_all(self, workers: list[int]) -> dict[int, str | None]:
        results = await asyncio.gather(*(self._probe(w) for w in workers))
        return dict(zip(workers, results, strict=True))

    async def _probe(self, worker: int) -> str | None:
        """How ``worker``'s actor answers: "direct", "proxy" (the scheduler's), or None."""
        address = self._addresses[worker]
        self._proxied.discard(address)
        for route in ("direct", "proxy"):
            if route == "proxy":
                self._proxied.add(address)
            try:
                kind, _ = await asyncio.wait_for(
                    self.call(worker, "ping"), CONNECT_TIMEOUT
                )
            except (OSError, asyncio.TimeoutError):
                continue
            if kind == "reply":
                return route
        self._proxied.discard(address)
        return None

    def ready(self, worker: int) -> bool:
        """Whether ``worker``'s actor is still in place."""
        return self._actors[worker].status == "finished"

    async def call(self, worker: int, function: str, *args: Any) -> tuple[str, Any]:
        """Call ``function`` of ``worker``'s actor: ``("reply" | "error", value)``.

        Raises OSError when the worker cannot be reached.
        """
        if self._bindings and function in ("round", "wake"):
            args = (self._bindings[worker], *args)  # a lasting host's binding
        return await self._call_actor(
            self._actors[worker].key, self._addresses[worker], function, *args
        )

    async def _call_actor(
        self, key: Any, address: str, function: str, *args: Any
    ) -> tuple[str, Any]:
        """``call``, given the actor's key and its worker's address."""
        message: dict[str, Any] = {
            "actor": key,
            "function": function,
            "args": [to_serialize(arg) for arg in args],
            "kwargs": {},
        }
        if address in self._proxied:
            answer = await _scheduler(self.client).proxy(
                worker=address, msg={"op": "actor_execute", **message}
            )
        else:
            answer = await self._connection(address).actor_execute(**message)
        if answer["status"] == "OK":
            return "reply", answer["result"]
        return "error", answer["exception"]

    def _connection(self, address: str) -> Any:
        """The client's pooled connection to ``address`` (its TLS settings too)."""
        return self.client.rpc(address)

    # --------------------------------------------------------------- rounds
    def arrivals(self) -> _DirectArrivals:
        """A collector for one round's calls."""
        return _DirectArrivals(self)

    def ship_weights(self, weights: np.ndarray, addresses: Sequence[str]) -> Any:
        """The weights themselves: direct calls carry them client-to-worker."""
        del addresses
        return weights

    def submit(self, worker: int, request: RoundRequest, weights: Any) -> DirectCall:
        """A call of ``request`` on ``worker``'s actor; it starts when added."""
        if isinstance(weights, np.ndarray) and weights.nbytes > FRAME_WEIGHTS_BYTES:
            # One serialised frame, not a copy inside every worker's pickle.
            return DirectCall(worker, pickle.dumps(request.carrying(None)), weights)
        return DirectCall(worker, pickle.dumps(request.carrying(weights)))

    def release(
        self, handles: list[DirectCall], addresses: list[str], over: tuple[str, int]
    ) -> None:
        """Drop unfinished calls and tell their workers (without blocking)."""
        loop = _loop(self.client)
        for call in handles:
            call.cancelled = True
            if call.task is not None:
                loop.add_callback(call.task.cancel)
        workers = [self._addresses.index(a) for a in addresses]
        loop.add_callback(self._wake, workers, over)

    async def _wake(self, workers: list[int], wake: tuple[str, int]) -> None:
        async def one(worker: int) -> None:
            try:
                await asyncio.wait_for(self.call(worker, "wake", *wake), self.timeout)
            except Exception:
                logger.debug("waking worker %s failed", worker, exc_info=True)

        task = asyncio.current_task()
        if task is not None:
            self._waking.add(task)
        try:
            await asyncio.gather(*(one(w) for w in workers))
        finally:
            self._waking.discard(task)

    async def _settle_wakes(self) -> None:
        """Let the wake-ups on their way arrive (for at most ``CLOSE_WAIT``).

        A wake-up that reached its worker after the actor was released would
        make the worker log a ``KeyError`` for the missing actor.
        """
        if self._waking:
            await asyncio.wait(list(self._waking), timeout=CLOSE_WAIT)

    def close(self) -> None:
        """Release the actors (their workers drop them), or unbind lasting hosts."""
        actors, self._actors = self._actors, []
        if self._bindings:
            self._unbind(actors)
            return
        if actors and self.client.status == "running":
            try:
                self.client.sync(self._settle_wakes)
                self.client.cancel(actors)
            except Exception:  # the cluster is going away anyway
                logger.debug("cancelling actors failed", exc_info=True)

    def _unbind(self, hosts: list[Future]) -> None:
        """Tell each lasting host its binding is over."""
        bindings, self._bindings = self._bindings, []
        if self.client.status != "running":
            return
        calls = list(zip(hosts, self._addresses, bindings, strict=True))

        async def unbind_all() -> None:
            async def one(host: Future, address: str, binding: str) -> None:
                try:
                    await asyncio.wait_for(
                        self._call_actor(host.key, address, "unbind", binding),
                        CONNECT_TIMEOUT,
                    )
                except Exception:  # the worker is gone: so is its binding
                    logger.debug("unbinding on %s failed", address, exc_info=True)

            await asyncio.gather(*(one(*call) for call in calls))

        try:
            self.client.sync(unbind_all)
        except Exception:  # the cluster is going away anyway
            logger.debug("unbinding failed", exc_info=True)


def _loop(client: Client) -> Any:
    """The client's event loop (a closed client has none)."""
    if client.loop is None:
        raise RuntimeError("the client is closed")
    return client.loop


def _scheduler(client: Client) -> Any:
    """The client's connection to its scheduler."""
    if client.scheduler is None:
        raise RuntimeError("the client is not connected to a scheduler")
    return client.scheduler


def default_transport() -> str:
    """Dask's configuration value ``gradcode.transport``, else ``"direct"``."""
    import dask.config

    return str(dask.config.get("gradcode.transport", default=TRANSPORTS[0]))


def check_transport(transport: str | None) -> str:
    """The transport's name (None: :func:`default_transport`), or a clear error."""
    source = "transport"
    if transport is None:
        transport, source = default_transport(), "gradcode.transport in dask.config"
    if transport not in TRANSPORTS:
        raise ValueError(
            f"transport must be one of {list(TRANSPORTS)}, got {transport!r} "
            f"(from {source})"
        )
    return transport


def make_transport(transport: str | None, client: Client) -> Transport:
    """The transport named ``transport`` (None: Dask's configuration's).

    On the embedded cluster the direct transport binds each fit to lasting
    actors (:class:`RoundHost`) instead of creating actors for it.
    """
    if check_transport(transport) == "futures":
        return FuturesTransport(client)
    return DirectTransport(client, lasting=is_embedded(client))
