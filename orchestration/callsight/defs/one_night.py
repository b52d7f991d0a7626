"""The executor of the jobs that make a night (nightly, republish): Dagster's default executor inside
the site's run lock (site/run_lock.py).

A run the daemon launches executes in a process of its own, which starts the steps as its children: the
executor runs in that process for the whole run, so the lock is held by the process doing the work and
the kernel frees it however the run ends. A second night fails at once, before any step, with the
lock's message (runs in the calling process, `callsight run`, take the lock in defs/nightly.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import dagster as dg
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.base import Executor

from callsight.site.run_lock import one_night
from callsight.site.settings import Settings

if TYPE_CHECKING:
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan

DEFAULT_EXECUTOR = dg.multi_or_in_process_executor


class OneNightExecutor(Executor):
    """Delegates everything to Dagster's executor; only `execute` is wrapped in the run lock."""

    def __init__(self, inner: Executor) -> None:
        self._inner = inner

    @property
    def retries(self) -> RetryMode:
        return self._inner.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._inner.step_dependency_config

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[dg.DagsterEvent]:
        home = Settings.from_env().home
        with one_night(home, f"Dagster run {plan_context.run_id} of job {plan_context.job_name}"):
            yield from self._inner.execute(plan_context, execution_plan)


def _create(init_context: dg.InitExecutorContext) -> Executor:
    return OneNightExecutor(DEFAULT_EXECUTOR.executor_creation_fn(init_context))


one_night_executor = dg.ExecutorDefinition(
    name="one_night_at_a_time",
    config_schema=DEFAULT_EXECUTOR.config_schema,
    requirements=DEFAULT_EXECUTOR.get_requirements,
    executor_creation_fn=_create,
    description="Dagster's default executor, inside the site's run lock: one night at a time.",
)
