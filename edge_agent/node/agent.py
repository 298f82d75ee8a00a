"""The agent daemon: wires the store, the model worker, the mesh client and the job
coordinator together on one board.

Threads: paho's network thread validates, stores and acknowledges messages (the handlers
here); the consumer takes the FCFS queue to the model worker (consumer.py). A step's messages
leave from the thread that committed it; the publisher forgets what the broker acknowledged and
publishes again what a lost link held up (outbox.py). The ticker publishes the heartbeat and
watches deadlines.
"""

from __future__ import annotations

import logging
import random
import signal
import sqlite3
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from edge_agent import __version__
from edge_agent.config import AgentConfig, read_secret
from edge_agent.engine.base import EngineSpec
from edge_agent.engine.counter import build_counter
from edge_agent.engine.worker import ModelWorker
from edge_agent.errors import AgentError, ConfigError, DiskFull, ProtocolError, StorageError
from edge_agent.node.admission import QUEUE_FULL
from edge_agent.node.claims import ClaimWatch
from edge_agent.node.consumer import Consumer, refusal
from edge_agent.node.coordinator import Coordinator
from edge_agent.node.diskroom import DiskRoom
from edge_agent.node.estimates import Estimator
from edge_agent.node.health import read_health
from edge_agent.node.outbox import Outbox
from edge_agent.node.peers import PeerTable
from edge_agent.node.quarantine import quarantine_if_damaged
from edge_agent.node.store import Store
from edge_agent.ops.modelcards import resolve_model
from edge_agent.wire import topics
from edge_agent.wire.messages import Answer, M, Progress, Result, Status, Submit, Task, decode, new_secret
from edge_agent.wire.mqtt import BrokerAddress, Credentials, Handler, MeshClient

log = logging.getLogger(__name__)
# Deadlines, departed peers and a full disk are looked at this often; nothing on a job's path
# waits for it.
TICK_S = 1.0
# A change of queue or work is announced this soon at most after the last status, and this long
# after the change at least.
STATUS_GAP_S = 0.25
STATUS_SETTLE_S = 0.05


def engine_spec(cfg: AgentConfig) -> EngineSpec:
    model_path, model_name = "", "fake"
    if cfg.engine == "llama":
        model_path, model_name = resolve_model(cfg.model, cfg.models_dir)
    return EngineSpec(kind=cfg.engine, model_path=model_path, model_name=model_name, n_ctx=cfg.n_ctx,
                      n_threads=cfg.n_threads, n_gpu_layers=cfg.n_gpu_layers, temperature=cfg.temperature,
                      seed=cfg.seed, fake_seconds=cfg.fake_seconds, fake_distribution=cfg.fake_distribution,
                      device=cfg.device)


class Agent:
    def __init__(self, cfg: AgentConfig) -> None:
        self.cfg = cfg
        self.spec = engine_spec(cfg)
        self.instance = new_secret()[:12]
        self.claims = ClaimWatch(window_s=max(60.0, 6 * cfg.peer_stale_s))
        self._claimed_elsewhere: tuple[str, float] | None = None
        self._store_note = ""
        try:
            self._store_note = quarantine_if_damaged(cfg.db_path)
            if self._store_note:
                log.error("%s", self._store_note)
            self.store = Store(cfg.db_path)
        except (OSError, sqlite3.Error) as err:
            raise ConfigError(f"cannot open the store {cfg.db_path}: {err} (check data_dir)") from None
        self.room = DiskRoom(self.store)
        self.peers = PeerTable(cfg.device, cfg.peer_stale_s)
        self.estimator = Estimator(cfg.layers, cfg.proposers)
        self.worker = ModelWorker(self.spec)
        self.rejected = 0
        self.dead_letters = 0
        self._stop = threading.Event()
        self._fatal = ""
        self._connected_at = 0.0
        self._connections = 0
        self._status_due = self._status_sent = 0.0
        self._status_now = threading.Event()
        self.client = MeshClient(
            f"agent-{cfg.device}",
            BrokerAddress(cfg.broker_host, cfg.broker_port),
            credentials=Credentials(cfg.broker_username,
                                    read_secret(cfg.broker_password_file, "broker password")
                                    if cfg.broker_password_file else "", cfg.tls_ca, cfg.tls_cert,
                                    cfg.tls_key),
            keepalive_s=cfg.keepalive_s,
            persistent_session=True,  # the broker keeps our tasks while we restart
            manual_ack=True,  # acknowledge only once a message is committed to the store
            will=(topics.status(cfg.device), Status(device=cfg.device, online=False, version=__version__,
                                                    instance=self.instance).encode()),
        )
        self.outbox = Outbox(self.store, self.client)
        self.coordinator = Coordinator(cfg, self.store, self.peers, self._publish_progress,
                                       rng=random.Random(), estimator=self.estimator,
                                       link_settled=self._link_settled, counter=build_counter(self.spec))
        self.consumer = Consumer(cfg, self.store, self.worker, self.coordinator, self.estimator, self.room,
                                 self.client, self._stop, self._fail, self._status_now.set)

    # -- lifecycle --------------------------------------------------------------------
    def run(self) -> None:
        """Serve until SIGTERM or SIGINT; raise AgentError if a failure forced the stop."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        self.start()
        try:
            while not self._stop.wait(1.0):
                pass
        finally:
            self.stop()
        if self._fatal:
            raise AgentError(f"agent stopped: {self._fatal} (unacknowledged messages stay with the broker)")

    def start(self) -> None:
        requeued = self.store.requeue_running()
        if requeued:
            log.warning("%d task(s) interrupted by the last stop are queued again", requeued)
        log.info("loading model %s", self.spec.model_name)
        self.worker.start()
        self.client.route(topics.task(self.cfg.device), self._inbound(Task, self._on_task))
        self.client.route(topics.result(self.cfg.device), self._inbound(Result, self._on_result))
        self.client.route(topics.submit(self.cfg.device), self._inbound(Submit, self._on_submit))
        # Heartbeats at QoS 0: the broker keeps none of them for us while we are away,
        # so a restart never starts by wading through hours of stale statuses.
        self.client.route(topics.ALL_STATUS, self._on_status, qos=0)
        self._status_handler = self._inbound(Status, self._on_peer_status)
        self.client.on_connected = self._on_connected
        self.client.on_storage_failure = self._storage_failed
        self.client.on_poison = self._dead_letter
        self.client.connect(timeout_s=30)
        self.coordinator.resume()
        self._threads = [
            threading.Thread(target=self.consumer.run, name="consumer", daemon=True),
            threading.Thread(target=self.outbox.run, args=(self._stop, self._publish_failed), name="publisher",
                             daemon=True),
            threading.Thread(target=self._tick, name="ticker", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        log.info("device %s serving on %s", self.cfg.device, self.client.broker)

    def stop(self) -> None:
        self._stop.set()
        self.store.tasks_ready.set()
        self.outbox.wake.set()
        self._status_now.set()
        # Stop the model first: an inference in progress is abandoned, its task stays
        # 'running' in the store and goes back to the head of the queue at the next start.
        self.worker.stop()
        for thread in getattr(self, "_threads", []):
            thread.join(timeout=10)
        self.client.publish(topics.status(self.cfg.device), self._status(online=False).encode(), retain=True)
        self.client.close()
        self.store.close()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def wait_stopped(self, timeout_s: float) -> bool:
        """Wait until the agent stops by itself (a storage failure) or is stopped."""
        return self._stop.wait(timeout_s)

    def _storage_failed(self, err: StorageError, retry: Callable[[], None]) -> None:
        if isinstance(err, DiskFull):
            self.room.filled(parked=retry)  # the message stays unacknowledged until there is room
        else:
            self._fail(err)

    def _fail(self, err: Exception) -> None:
        """Storage failed: stop rather than acknowledge what cannot be kept."""
        self._fatal = f"{type(err).__name__}: {err}"
        self._stop.set()

    def _link_settled(self) -> bool:
        return self.client.connected and time.monotonic() - self._connected_at > self.cfg.peer_stale_s

    def _on_connected(self) -> None:
        self._connected_at = time.monotonic()
        self.client.publish(topics.LOCAL_IDENTITY, self.cfg.device.encode(), retain=True)
        self._status_now.set()
        # The broker acknowledged what the outbox gave it, but saves it only every autosave
        # interval: if it died meanwhile (or the board lost power) those messages are gone.
        # Publish again what left recently; receivers deduplicate.
        since = time.time() - self.cfg.resend_window_s
        try:
            results = self.store.resend_results(since)
            answers = self.coordinator.resend_answers(since)
            if self._connections:
                self.coordinator.resume()  # and the pending tasks (start() did so at the first connect)
        except DiskFull:
            self.room.filled()
            return
        self._connections += 1
        if results or answers:
            log.info("connected to the broker; sent again %d result(s) and %d answer(s) of the last %.0f s",
                     results, answers, self.cfg.resend_window_s)
        self.outbox.republish()

    def _publish_failed(self, err: Exception) -> bool:
        """The publisher's step failed: whether it goes on."""
        if isinstance(err, DiskFull):
            self.room.filled()
            return True
        if isinstance(err, StorageError):
            self._fail(err)
            return False
        log.error("publishing the outbox failed: %s: %s", type(err).__name__, err)
        return True

    # -- inbound (paho network thread) --------------------------------------------------
    # Each handler decodes strictly; a ProtocolError (malformed, oversized, forged) is counted
    # and dropped here. MeshClient.deliver dead-letters any other error, and leaves the message
    # with the broker only for a StorageError (_storage_failed).
    def _inbound(self, kind: type[M], handle: Callable[[M, mqtt.MQTTMessage], None]) -> Handler:
        def handler(message: mqtt.MQTTMessage) -> None:
            try:
                handle(decode(message.payload, kind, self.cfg.max_message_bytes), message)
            except ProtocolError as err:
                self._reject(message.topic, err)
        return handler

    def _reject(self, topic: str, err: ProtocolError) -> None:
        self.rejected += 1
        log.warning("rejected message on %s: %s (%d rejected so far)", topic, err, self.rejected)

    def _dead_letter(self, message: mqtt.MQTTMessage, err: Exception) -> None:
        """A message some handler failed on: keep it for inspection, count it, serve on."""
        self.rejected += 1
        self.dead_letters += 1
        self.store.add_dead_letter(message.topic, bytes(message.payload), f"{type(err).__name__}: {err}")

    def _on_task(self, task: Task, message: mqtt.MQTTMessage) -> None:
        try:
            if self.store.queue_depth() >= self.cfg.max_queue:
                full = refusal(task, self.cfg.device, f"{QUEUE_FULL} ({self.cfg.max_queue} tasks)")
                self.store.add_outbox(topics.result(task.origin), full.encode())
            elif not self.store.enqueue(task, result_topic=topics.result(task.origin)):
                # Seen before; if done already, its origin asks again because a broker lost the result.
                self.store.resend_result(task.task_id)
        except DiskFull:
            if task.origin == self.cfg.device:
                raise  # its own job's task: wait for room rather than fail the job
            # Nothing was stored: refuse it straight away, and its origin sends it elsewhere.
            self.room.filled()
            self.client.publish(topics.result(task.origin), refusal(task, self.cfg.device, "disk full").encode())

    def _on_result(self, result: Result, message: mqtt.MQTTMessage) -> None:
        self.coordinator.on_result(result)

    def _on_submit(self, submit: Submit, message: mqtt.MQTTMessage) -> None:
        try:
            self.coordinator.accept(submit)  # admits it and records the arrival in the estimator
        except DiskFull:
            if self.store.job(submit.job_id) is not None:
                raise  # recorded before the disk filled: it goes on once there is room
            self.room.filled()
            refusal = Answer(job_id=submit.job_id, origin=self.cfg.device, ok=False, secret=submit.secret,
                             error=f"device {self.cfg.device} cannot take prompts now: its disk is full",
                             reason="overloaded")
            self.client.publish(topics.answer(submit.reply_to or self.cfg.device, submit.job_id), refusal.encode())

    def _on_status(self, message: mqtt.MQTTMessage) -> None:
        if message.payload:  # else a cleared retained status
            self._status_handler(message)

    def _on_peer_status(self, status: Status, message: mqtt.MQTTMessage) -> None:
        if topics.device_of(message.topic) != status.device:
            raise ProtocolError(f"status claims device {status.device}")
        now = seen = time.monotonic()
        if message.retain and status.ts:
            # A retained status may be old: date it by its timestamp, not by now.
            seen -= max(0.0, time.time() - status.ts)
        self.peers.update(status, seen)
        if not message.retain and self.claims.observe(status.device, status.instance, status.online, now):
            log.error("device id %s is claimed by two boards at once (a cloned SD card?); give one of them "
                      "another edge_device", status.device)
        if self.cfg.device in status.conflicts and status.device != self.cfg.device:
            if self._claimed_elsewhere is None:
                log.error("%s sees another board running as %s too; give one of them another edge_device",
                          status.device, self.cfg.device)
            self._claimed_elsewhere = (status.device, now)

    def _alerts(self, now: float) -> list[str]:
        alerts = [a for a in (self._store_note, self.room.alert()) if a]
        if self._claimed_elsewhere is not None and now - self._claimed_elsewhere[1] <= self.claims.hold_s:
            alerts.append(f"another board also runs as {self.cfg.device} (seen by {self._claimed_elsewhere[0]})")
        return alerts

    # -- the ticker -------------------------------------------------------------------
    def _tick(self) -> None:
        last_prune = next_tick = time.monotonic()
        while not self._stop.is_set():
            wait = min(next_tick, self._status_due) - time.monotonic()
            if wait > 0 and self._status_now.wait(wait):
                # The queue or the work in hand changed: say so soon, at most every STATUS_GAP_S, but
                # not at once. A change is the moment of a job's next step, which a status (read,
                # encoded, relayed and decoded by every peer) would slow down.
                self._status_now.clear()
                soon = max(self._status_sent + STATUS_GAP_S, time.monotonic() + STATUS_SETTLE_S)
                self._status_due = min(self._status_due, soon)
                continue
            now = time.monotonic()
            try:
                if now >= self._status_due:  # first: the status says when the disk is full
                    self._status_sent, self._status_due = now, now + self.cfg.status_interval_s
                    # QoS 1 across the bridges: see docs/protocol.md, "Why QoS 1 for statuses".
                    self.client.publish(topics.status(self.cfg.device), self._status().encode(), qos=1,
                                        retain=True)
                if now < next_tick:
                    continue
                next_tick = now + TICK_S
                if self.room.full:
                    self.room.check()
                    if self.room.full:
                        continue  # every step below writes to the store
                    self.coordinator.resume()  # push on what the full disk held up
                    self.outbox.republish()
                self.coordinator.tick()
                if now - last_prune > 3600:
                    self.store.prune()
                    last_prune = now
            except DiskFull:
                self.room.filled()
            except Exception:  # keep ticking: a transient fault must not stop heartbeats
                log.exception("ticker step failed")

    def _status(self, online: bool = True) -> Status:
        health = read_health()
        estimator = self.estimator
        return Status(
            device=self.cfg.device, online=online, ts=round(time.time(), 3), version=__version__,
            model=self.spec.model_name, n_ctx=self.worker.n_ctx, queue=self.store.queue_depth(),
            busy=bool(self.consumer.current), current=self.consumer.current,
            alpha=_round(estimator.alpha), tokens_per_s=_round(estimator.tokens_per_s),
            lam=_round(estimator.lam(), 5), rho=_round(estimator.rho()),
            layers=self.cfg.layers, proposers=self.cfg.proposers, policy=self.cfg.policy,
            cpu=health.cpu, memory=health.memory, temperature=health.temperature,
            completed=self.consumer.completed, rejected=self.rejected, worker_restarts=self.worker.restarts,
            peers=[s.device for s in self.peers.live()], instance=self.instance,
            alerts=self._alerts(time.monotonic()), conflicts=self.claims.conflicts(time.monotonic()),
        )

    def _publish_progress(self, progress: Progress) -> None:
        self.outbox.notify(topics.progress(self.cfg.device), progress.encode())


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)
