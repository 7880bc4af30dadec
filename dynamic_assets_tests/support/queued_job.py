"""A code location of one small job, for runs that go through a Dagster run queue."""

import time

import dagster as dg


@dg.op
def wait_a_moment() -> None:
    time.sleep(1)


@dg.job
def wait_job() -> None:
    wait_a_moment()


defs = dg.Definitions(jobs=[wait_job])
