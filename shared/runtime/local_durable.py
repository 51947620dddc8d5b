"""A local Durable Functions backend: the SDK's own replay, driven from history events.

It plays the part of the Durable Task extension: it keeps each instance's history, appends the events the
extension would append (TaskScheduled/Completed/Failed, TimerCreated/Fired, SubOrchestrationInstance*,
EventRaised), and hands the whole history to ``DurableOrchestrationContext.from_json`` and
``Orchestrator.handle`` on every turn, exactly as the host does. What an orchestrator awaits is read from
``context.open_tasks`` after each turn, which is also how retry timers and re-scheduled attempts of
``call_activity_with_retry`` are found.

Time is virtual: events are delivered in timestamp order from a queue. An activity runs at the moment it
is scheduled, with the clock set to that moment; the time it took (the simulator advances the clock) sets
when its completion is delivered. Activities scheduled together run from the same start time, as they
would in parallel.

It is as strict as the extension where a locally green orchestration could otherwise fail in Azure (see
:mod:`.extension` for each rule and its source): replays are checked against the history for determinism,
failures are worded as the extension words them, payloads go through the SDK's ``df_dumps``/``df_loads``, events
for unknown or finished instances are refused as the client refuses them, and the orchestration payload carries
the schema version and timer limits. With a :class:`~.chaos.Chaos`, activities are redelivered and the worker
crashes at seeded points (at-least-once delivery, as Durable Functions gives it). With an
:class:`~shared.runtime.interleave.Interleaver` the activities of a fan-out also interleave (at store calls, in an
order its seed picks), as they do in Azure; chaos then strikes each of them once the fan-out has run.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.actions.NoOpAction import NoOpAction
from azure.durable_functions.models.DurableOrchestrationContext import DurableOrchestrationContext
from azure.durable_functions.models.Task import AtomicTask, RetryAbleTask
from azure.functions import FunctionApp
from azure.functions.decorators.function_app import Function

from . import extension as ext
from .chaos import Chaos, FaultDraws, Strike, WorkerDied
from .collections_gc import fewer_collections
from .interleave import Interleaver

ORCHESTRATOR_STARTED, EXECUTION_STARTED, TASK_SCHEDULED, TASK_COMPLETED, TASK_FAILED = 12, 0, 4, 5, 6
SUB_CREATED, SUB_COMPLETED, SUB_FAILED, TIMER_CREATED, TIMER_FIRED, ORCHESTRATOR_COMPLETED = 7, 8, 9, 10, 11, 13
EVENT_RAISED = 15
COMPLETIONS = (TASK_COMPLETED, TASK_FAILED)
FINISHED = ("Completed", "Failed", "Terminated")


class OrchestrationFailed(Exception):
    """An orchestration ended with an unhandled exception."""


@dataclass
class WorkItem:
    """An activity the worker holds until its result is checkpointed (delivered to the orchestration)."""

    instance_id: str
    task_id: int
    name: str
    input: str | None
    mark: dict[Any, int] | None
    done: datetime | None = None
    """When its last execution's side effects were done (the worker's death cannot undo them)."""


@dataclass
class Instance:
    instance_id: str
    name: str
    input: str
    parent: str | None = None
    parent_task_id: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    dispatched: set[int] = field(default_factory=set)
    status: str = "Pending"
    output: Any = None
    error: str | None = None
    custom_status: Any = None
    turns: int = 0
    replayed_events: int = 0
    created_at: datetime | None = None
    completed_at: datetime | None = None
    last_updated_at: datetime | None = None
    generations: int = 1


@dataclass
class RunnerStats:
    turns: int = 0
    replayed_events: int = 0
    activities: int = 0
    max_history: int = 0
    instances: int = 0
    replay_seconds: float = 0.0
    """Wall time of the turns themselves: building the history and the SDK's replay (activities excluded)."""
    max_history_bytes: int = 0
    longest_activity: dict[str, float] = field(default_factory=dict)
    """Activity name -> its longest run in simulated seconds (host.json's functionTimeout bounds each run)."""
    """The largest history handed to the SDK, as JSON."""


Registry = tuple[dict[str, Callable[..., Any]], dict[str, tuple[Callable[..., Any], str]]]
_REGISTRIES: dict[int, tuple[FunctionApp, Registry]] = {}
_INDEXED: dict[int, tuple[FunctionApp, list[Function]]] = {}


def indexed_functions(app: FunctionApp) -> list[Function]:
    """The app's functions as the host indexes them (once per app: the SDK refuses a second indexing)."""
    cached = _INDEXED.get(id(app))
    if cached is not None and cached[0] is app:
        return cached[1]
    logging.disable(logging.WARNING)  # indexing warns that an app without HTTP functions has no auth level
    try:
        functions = app.get_functions()
    finally:
        logging.disable(logging.NOTSET)
    _INDEXED[id(app)] = (app, functions)
    return functions


def _registry(app: FunctionApp) -> Registry:
    """The app's orchestrators and activities by name."""
    cached = _REGISTRIES.get(id(app))
    if cached is not None and cached[0] is app:
        return cached[1]
    orchestrators: dict[str, Callable[..., Any]] = {}
    activities: dict[str, tuple[Callable[..., Any], str]] = {}
    for fn in indexed_functions(app):
        trigger = fn.get_trigger()
        user = fn.get_user_function()
        name = fn.get_function_name() or user.__name__
        if trigger is None:
            continue
        if trigger.type == "orchestrationTrigger":
            orchestrators[name] = user.orchestrator_function  # type: ignore[attr-defined]
        elif trigger.type == "activityTrigger":
            activities[name] = (user, trigger.name)
    _REGISTRIES[id(app)] = (app, (orchestrators, activities))
    return orchestrators, activities


class LocalDurableRunner:
    """Runs the orchestrators and activities registered on a Function App."""

    def __init__(self, app: FunctionApp, *, start: datetime, set_clock: Callable[[datetime], None],
                 read_clock: Callable[[], datetime],
                 on_status: Callable[[str, Any], None] | None = None, chaos: Chaos | None = None,
                 draws: FaultDraws | None = None, interleaver: Interleaver | None = None) -> None:
        self._orchestrators, self._activities = _registry(app)
        self._interleaver = interleaver
        self.chaos = chaos
        self._draws = draws
        self._inflight: dict[tuple[str, int], WorkItem] = {}
        self.now = start
        self._set_clock = set_clock
        self._read_clock = read_clock
        self._on_status = on_status
        self._queue: list[tuple[datetime, int, str, dict[str, Any]]] = []
        self._seq = itertools.count()
        self.instances: dict[str, Instance] = {}
        self.stats = RunnerStats()

    # ------------------------------------------------------------------ client API
    def start_new(self, name: str, instance_id: str, input_: Any) -> str:
        """Start an orchestration; an instance id already in use is returned unchanged (no second start)."""
        if instance_id in self.instances:
            return instance_id
        self._create(name, instance_id, ext.dumps(input_), None, None)
        return instance_id

    def raise_event(self, instance_id: str, name: str, data: Any, at: datetime | None = None) -> None:
        """Queue an event, or refuse it as the client does: 404 for no such instance, 410 for a finished one."""
        inst = self.instances.get(instance_id)
        if inst is None:
            raise ext.not_found(instance_id)
        if inst.status in FINISHED:
            raise ext.gone(instance_id)
        self._push(at or self.now, instance_id, {"EventType": EVENT_RAISED, "Name": name, "Input": json.dumps(data)})

    def status(self, instance_id: str) -> dict[str, Any] | None:
        """The instance as the Durable client's ``get_status`` describes it (None when there is none)."""
        inst = self.instances.get(instance_id)
        if inst is None:
            return None
        return {"instance_id": inst.instance_id, "name": inst.name, "runtime_status": inst.status,
                "created_at": inst.created_at, "last_updated_at": inst.last_updated_at or inst.created_at,
                "custom_status": inst.custom_status,
                "output": inst.output if inst.status != "Failed" else inst.error}

    def list_instances(self, *, name: str | None = None, created_from: datetime | None = None,
                       limit: int = 50) -> list[dict[str, Any]]:
        """Instances, newest first, like ``get_status_by`` (optionally one orchestrator's only)."""
        found = [i for i in self.instances.values() if (name is None or i.name == name)
                 and (created_from is None or (i.created_at is not None and i.created_at >= created_from))]
        found.sort(key=lambda i: (i.created_at or self.now, i.instance_id), reverse=True)
        return [s for s in (self.status(i.instance_id) for i in found[:limit]) if s is not None]

    def terminate(self, instance_id: str, reason: str) -> None:
        """End an instance where it stands, as the extension does: no further event is delivered to it."""
        inst = self.instances.get(instance_id)
        if inst is None:
            raise KeyError(f"no instance {instance_id!r}")
        if inst.status in FINISHED:
            return
        inst.status = "Terminated"
        inst.output = reason
        inst.completed_at = inst.last_updated_at = self.now

    def run(self, until: datetime | None = None, stop: Callable[[], bool] | None = None) -> None:
        """Deliver events in time order until none is left, the next is after ``until``, or ``stop()`` holds
        after a turn (a test pausing at a phase to act as an operator would)."""
        with fewer_collections():
            self._run_queue(until, stop)

    def _run_queue(self, until: datetime | None, stop: Callable[[], bool] | None) -> None:
        while self._queue:
            if stop is not None and stop():
                break
            t = self._queue[0][0]
            if until is not None and t > until:
                break
            t, _, iid, event = heapq.heappop(self._queue)
            batch = [event]
            while self._queue and self._queue[0][0] == t and self._queue[0][2] == iid:
                batch.append(heapq.heappop(self._queue)[3])
            self.now = max(self.now, t)
            for e in batch:
                if e["EventType"] in COMPLETIONS:
                    self._inflight.pop((iid, int(e["TaskScheduledId"])), None)  # checkpointed
            self._turn(self.instances[iid], batch)

    def idle_until(self, t: datetime) -> None:
        """Let virtual time pass with nothing to deliver (a local server keeping pace with the wall clock), so
        that an event raised now is stamped now."""
        if t > self.now:
            self.now = t
            self._set_clock(t)

    def next_event_at(self) -> datetime | None:
        return self._queue[0][0] if self._queue else None

    def result(self, instance_id: str) -> Any:
        inst = self.instances[instance_id]
        if inst.status == "Failed":
            raise OrchestrationFailed(inst.error or "orchestration failed")
        if inst.status != "Completed":
            raise OrchestrationFailed(f"orchestration {instance_id} is {inst.status}, not completed")
        return inst.output

    # ------------------------------------------------------------------ internals
    def _push(self, t: datetime, instance_id: str, event: dict[str, Any]) -> None:
        heapq.heappush(self._queue, (t, next(self._seq), instance_id, event))

    def _create(self, name: str, instance_id: str, input_json: str, parent: str | None,
                parent_task_id: int | None) -> None:
        if name not in self._orchestrators:
            raise KeyError(f"no orchestrator named {name!r} is registered")
        inst = Instance(instance_id, name, input_json, parent, parent_task_id, created_at=self.now)
        self.instances[instance_id] = inst
        self.stats.instances += 1
        self._push(self.now, instance_id, {"EventType": EXECUTION_STARTED, "Name": name, "Input": input_json,
                                           "Version": "", "ParentInstance": parent})

    def _event(self, event: dict[str, Any], t: datetime, played: bool) -> dict[str, Any]:
        return {"EventId": -1, "IsPlayed": played, "Timestamp": t.isoformat(), **event}

    def _turn(self, inst: Instance, events: list[dict[str, Any]]) -> None:
        if inst.status in FINISHED:
            return  # e.g. a timer that fires after the orchestration has finished
        t = self.now
        inst.last_updated_at = t
        old = [{**e, "IsPlayed": True} for e in inst.history]
        new = [self._event({"EventType": ORCHESTRATOR_STARTED}, t, False)]
        new += [self._event(e, t, False) for e in events]
        history = old + new
        started = time.perf_counter()
        body = {"history": history, "instanceId": inst.instance_id, "isReplaying": bool(old),
                "parentInstanceId": inst.parent, "input": inst.input, **ext.context_fields()}
        text = json.dumps(body)
        ctx = DurableOrchestrationContext.from_json(text)
        replayed = _record_scheduled(ctx)
        inst.status = "Running"
        inst.turns += 1
        self.stats.turns += 1
        self.stats.replayed_events += len(history)
        self.stats.max_history = max(self.stats.max_history, len(history))
        self.stats.max_history_bytes = max(self.stats.max_history_bytes, len(text))
        self._set_clock(t)
        try:
            state = json.loads(df.Orchestrator(self._orchestrators[inst.name]).handle(ctx))
        except Exception as exc:  # the SDK raises with the orchestrator's exception as the message
            self.stats.replay_seconds += time.perf_counter() - started
            inst.history = history
            drift = ext.check_determinism(old, replayed)
            error = ext.NON_DETERMINISTIC + drift if drift else \
                ext.orchestrator_failure(inst.name, str(exc).split("\n\n$OutOfProcData$")[0])
            self._complete(inst, error=error)
            return
        self.stats.replay_seconds += time.perf_counter() - started
        drift = ext.check_determinism(old, replayed)
        if drift is not None:
            inst.history = history
            self._complete(inst, error=ext.NON_DETERMINISTIC + drift)
            return
        history.append(self._event({"EventType": ORCHESTRATOR_COMPLETED}, t, False))
        inst.history = history
        if state.get("customStatus") != inst.custom_status:
            inst.custom_status = state.get("customStatus")
            if self._on_status is not None:
                self._on_status(inst.instance_id, inst.custom_status)
        if state.get("isDone"):
            if ctx.will_continue_as_new:
                self._continue_as_new(inst, state)
            else:
                self._complete(inst, output=state.get("output"))
            return
        self._dispatch(inst, ctx)

    def _dispatch(self, inst: Instance, ctx: DurableOrchestrationContext) -> None:
        pending: list[AtomicTask] = []
        for tasks in list(ctx.open_tasks.values()):
            for task in tasks if isinstance(tasks, list) else [tasks]:
                if isinstance(task, AtomicTask) and isinstance(task.id, int) and task.id not in inst.dispatched:
                    pending.append(task)
        activities: list[tuple[int, str, str | None]] = []
        for task in sorted(pending, key=lambda x: int(x.id)):
            if inst.status in FINISHED:
                return
            inst.dispatched.add(int(task.id))
            job = self._schedule(inst, task)
            if job is not None:
                activities.append(job)
        if inst.status in FINISHED:
            return
        if len(activities) > 1 and self._interleaver is not None:
            self._activities_together(inst, activities, self._interleaver)
        else:
            for tid, name, input_json in activities:
                self._activity(inst, tid, name, input_json)

    def _schedule(self, inst: Instance, task: AtomicTask) -> tuple[int, str, str | None] | None:
        """Schedule a timer or a sub-orchestration; an activity is returned, to be run with its fan-out."""
        tid = int(task.id)
        action = _action_of(task)
        if action is None:  # the back-off before the next attempt of a -WithRetry call
            parent = task.parent
            assert isinstance(parent, RetryAbleTask)
            delay = timedelta(milliseconds=parent.retry_options.first_retry_interval_in_milliseconds)
            self._timer(inst, tid, self.now + delay)
            return None
        kind = action.action_type
        if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
            return tid, str(action.function_name), action.input_
        if kind == ActionType.CREATE_TIMER:
            if action.fire_at - self.now > ext.MAXIMUM_SHORT_TIMER:  # ThrowIfInvalidTimerLengthForStorageProvider
                self._complete(inst, error=ext.orchestrator_failure(
                    inst.name, f"Timer duration must not exceed {ext.MAXIMUM_SHORT_TIMER.days} days when using "
                               "the Azure Storage provider (a single timer was asked to fire at "
                               f"{action.fire_at.isoformat()})"))
                return None
            self._timer(inst, tid, action.fire_at)
        elif kind in (ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
            child_id = action.instance_id or f"{inst.instance_id}:{tid}"
            inst.history.append(self._event({"EventType": SUB_CREATED, "EventId": tid, "Name": action.function_name,
                                             "InstanceId": child_id, "Input": action._input}, self.now, False))
            self._create(action.function_name, child_id, action._input, inst.instance_id, tid)
        else:
            raise NotImplementedError(f"the local runner does not support action type {kind!r}")
        return None

    def _timer(self, inst: Instance, tid: int, fire_at: datetime) -> None:
        inst.history.append(self._event({"EventType": TIMER_CREATED, "EventId": tid, "FireAt": fire_at.isoformat()},
                                        self.now, False))
        self._push(max(fire_at, self.now), inst.instance_id,
                   {"EventType": TIMER_FIRED, "TimerId": tid, "FireAt": fire_at.isoformat()})

    def _work_item(self, inst: Instance, tid: int, name: str, input_json: str | None) -> WorkItem:
        """Record the activity as scheduled and hand it to the worker (in flight until its result is delivered)."""
        inst.dispatched.add(tid)  # again: a crash while its fan-out ran rebuilt the set from the history
        inst.history.append(self._event({"EventType": TASK_SCHEDULED, "EventId": tid, "Name": name,
                                         "Input": input_json}, self.now, False))
        mark = self._draws.mark() if self.chaos is not None and self._draws is not None else None
        item = WorkItem(inst.instance_id, tid, name, input_json, mark)
        self._inflight[(inst.instance_id, tid)] = item
        return item

    def _activity(self, inst: Instance, tid: int, name: str, input_json: str | None) -> None:
        item = self._work_item(inst, tid, name, input_json)
        event, done = self._execute(item, self.now)
        if event is None:  # the worker died inside it: everything it held runs again
            self.crash()
            return
        self._push(done, inst.instance_id, event)
        self._strike(item, done)

    def _activities_together(self, inst: Instance, jobs: list[tuple[int, str, str | None]],
                             interleaver: Interleaver) -> None:
        """A fan-out: the activities run interleaved, each from the same start on its own clock; chaos strikes
        each once they have all run (a death inside one kills the worker: all of them run again)."""
        items = [self._work_item(inst, tid, name, input_json) for tid, name, input_json in jobs]
        if self.chaos is not None:
            self.chaos.armed = True
        try:
            outcomes = interleaver.run([functools.partial(self._run, item) for item in items], self.now)
        finally:
            if self.chaos is not None:
                self.chaos.armed = False
        died = False
        for item, outcome in zip(items, outcomes, strict=True):
            if outcome.error is not None:
                raise outcome.error  # _run records an activity's own failure: this is the runner's
            item.done = max(outcome.finished_at, self.now)
            self._took(item.name, self.now, item.done)
            if outcome.value is None:
                died = True
            else:
                self._push(item.done, inst.instance_id, outcome.value)
        self._set_clock(self.now)
        if died:
            self.crash()
            return
        for item in items:
            self._strike(item, item.done or self.now)

    def _strike(self, item: WorkItem, done: datetime) -> None:
        """After an activity's first execution: chaos may redeliver it or crash the worker."""
        if self.chaos is None:
            return
        self.chaos.current = (item.name, item.instance_id, item.task_id)
        strike = self.chaos.strike()
        if strike is Strike.REDELIVER:
            self.chaos.stats.redelivered += 1
            self._rerun(item, done)
        elif strike is Strike.CRASH:
            self.crash()

    def _run(self, item: WorkItem) -> dict[str, Any] | None:
        """One execution of an activity: its completion or failure event, None if the worker died in it."""
        fn, param = self._activities[item.name]
        self.stats.activities += 1
        if self.chaos is not None:
            self.chaos.begin((item.name, item.instance_id, item.task_id))
        try:
            result = fn(**{param: ext.decode_activity_input(item.input)})
            return {"EventType": TASK_COMPLETED, "TaskScheduledId": item.task_id,
                    "Result": ext.encode_activity_output(result)}
        except WorkerDied:
            return None
        except Exception as exc:
            reason, details = ext.activity_failure(item.name, exc)
            return {"EventType": TASK_FAILED, "TaskScheduledId": item.task_id, "Reason": reason, "Details": details}

    def _execute(self, item: WorkItem, start: datetime) -> tuple[dict[str, Any] | None, datetime]:
        """Run an activity as the worker does; returns its completion event (None if the worker died in it)
        and when it is delivered."""
        self._set_clock(start)
        if self.chaos is not None:
            self.chaos.armed = True
        try:
            event = self._run(item)
        finally:
            if self.chaos is not None:
                self.chaos.armed = False
        done = max(self._read_clock(), start)
        item.done = done
        self._took(item.name, start, done)
        self._set_clock(self.now)
        return event, done

    def _took(self, name: str, start: datetime, done: datetime) -> None:
        """The longest simulated run of each activity (a test holds it under the host's functionTimeout)."""
        took = (done - start).total_seconds()
        self.stats.longest_activity[name] = max(self.stats.longest_activity.get(name, 0.0), took)

    def _rerun(self, item: WorkItem, at: datetime) -> None:
        """The item's result was lost: drop its queued completion, run it again from ``at``, drawing the
        faults its first execution drew, and queue the new completion (again, if the worker dies again)."""
        key = (item.instance_id, item.task_id)
        self._queue = [q for q in self._queue if not (q[2] == item.instance_id and q[3]["EventType"] in COMPLETIONS
                                                      and int(q[3]["TaskScheduledId"]) == item.task_id)]
        heapq.heapify(self._queue)
        event: dict[str, Any] | None = None
        while event is None:
            if self._draws is not None and item.mark is not None:
                with self._draws.replaying(item.mark):
                    event, at = self._execute(item, at)
            else:
                event, at = self._execute(item, at)
            if event is None and self.chaos is not None:
                self.chaos.stats.crashes += 1
        self._inflight[key] = item
        self._push(at, item.instance_id, event)

    def crash(self) -> None:
        """The worker dies now: every activity it holds loses its result and runs again (redelivered after the
        lock expires, once what its first execution started is done), and the orchestrations resume from their
        histories alone."""
        if self.chaos is not None:
            self.chaos.stats.crashes += 1
        for item in sorted(self._inflight.values(), key=lambda x: (x.instance_id, x.task_id)):
            if self.chaos is not None:
                self.chaos.stats.reexecuted += 1
            # virtual time runs an activity's side effects at once: its re-run comes after they are done
            self._rerun(item, max(self.now, item.done or self.now))
        for inst in self.instances.values():  # nothing kept in memory survives but what the histories say
            inst.dispatched = {int(e["EventId"]) for e in inst.history
                               if e["EventType"] in (TASK_SCHEDULED, TIMER_CREATED, SUB_CREATED)}

    def _continue_as_new(self, inst: Instance, state: dict[str, Any]) -> None:
        new_input = None
        for group in state.get("actions", []):
            for action in group if isinstance(group, list) else [group]:
                if action.get("actionType") == ActionType.CONTINUE_AS_NEW:
                    new_input = action.get("input")
        inst.input = new_input if isinstance(new_input, str) else json.dumps(new_input)
        inst.history = []
        inst.dispatched = set()
        inst.generations += 1
        self._push(self.now, inst.instance_id, {"EventType": EXECUTION_STARTED, "Name": inst.name,
                                                "Input": inst.input, "Version": ""})

    def _complete(self, inst: Instance, output: Any = None, error: str | None = None) -> None:
        inst.status = "Failed" if error is not None else "Completed"
        inst.output = output
        inst.error = error
        inst.completed_at = self.now
        if inst.parent is None or inst.parent_task_id is None:
            return
        if error is None:
            event = {"EventType": SUB_COMPLETED, "TaskScheduledId": inst.parent_task_id, "Result": ext.dumps(output)}
        else:
            event = {"EventType": SUB_FAILED, "TaskScheduledId": inst.parent_task_id,
                     "Reason": error, "Details": inst.instance_id}
        self._push(self.now, inst.parent, event)


def _action_of(task: AtomicTask) -> Any:
    """The action a task stands for; None for the back-off timer of a -WithRetry call (the SDK marks its
    intermediate tasks with NoOp actions: a re-scheduled attempt stands for the original call)."""
    action = task._get_action()
    parent = task.parent
    if isinstance(parent, RetryAbleTask) and isinstance(action, NoOpAction):
        if "timer" in str(action.metadata or ""):
            return None
        return parent.actions[0] if isinstance(parent.actions, list) else parent.actions
    return action


def _describe(task: AtomicTask) -> tuple[str, str] | None:
    """(kind, name) of what a task schedules, as the history records it; None for what has no sequence id."""
    action = _action_of(task)
    if action is None:
        return ext.KIND_TIMER, ""
    kind = action.action_type
    if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
        return ext.KIND_ACTIVITY, str(action.function_name)
    if kind == ActionType.CREATE_TIMER:
        return ext.KIND_TIMER, ""
    if kind in (ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
        return ext.KIND_SUB, str(action.function_name)
    return None


def _record_scheduled(ctx: DurableOrchestrationContext) -> dict[int, tuple[str, str]]:
    """Record, by sequence number, every task the replay schedules (the SDK keeps only the open ones)."""
    seen: dict[int, tuple[str, str]] = {}
    original = ctx._add_to_open_tasks

    def add(task: Any) -> None:
        original(task)
        if isinstance(task, AtomicTask) and isinstance(task.id, int) and task.id >= 0:
            what = _describe(task)
            if what is not None:
                seen[task.id] = what

    ctx._add_to_open_tasks = add
    return seen
