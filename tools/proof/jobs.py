"""The public API as the UI uses it (Submit, WatchJob, GetJob, ListJobs) over any transport."""

from __future__ import annotations

from dataclasses import dataclass

from tools.proof.gateway import Metadata, Outcome, Transport, method_path
from tools.proof.photos import Photo
from weather.v1 import dispatcher_pb2, job_pb2, reporting_pb2

DISPATCHER = dispatcher_pb2.DESCRIPTOR.services_by_name["DispatcherService"].full_name
REPORTING = reporting_pb2.DESCRIPTOR.services_by_name["ReportingService"].full_name
SUBMIT = method_path(DISPATCHER, "Submit")
GET_JOB = method_path(DISPATCHER, "GetJob")
WATCH_JOB = method_path(DISPATCHER, "WatchJob")
LIST_JOBS = method_path(REPORTING, "ListJobs")
GET_STATS = method_path(REPORTING, "GetStats")
GIVE_FEEDBACK = method_path(DISPATCHER, "GiveFeedback")
GET_QUALITY = method_path(REPORTING, "GetQuality")
TERMINAL_STATES = frozenset({job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED})


def is_terminal(job: job_pb2.Job) -> bool:
    return job.state in TERMINAL_STATES


def state_name(job: job_pb2.Job) -> str:
    return job_pb2.JobState.Name(job.state)


@dataclass
class JobsClient:
    """Typed calls over one transport; failures come back as the call's `Outcome`."""

    transport: Transport
    rpc_timeout: float = 30.0
    metadata: Metadata = ()
    """Sent with every call: a signed-in caller's token (`tools.proof.tokens`)."""

    async def submit(
        self, photo: Photo, metadata: Metadata = ()
    ) -> tuple[Outcome, job_pb2.Job | None]:
        request = dispatcher_pb2.SubmitRequest(image=photo.image, filename=photo.filename)
        outcome = await self.transport.call(
            SUBMIT,
            request.SerializeToString(),
            deadline=self.rpc_timeout,
            metadata=[*self.metadata, *metadata],
        )
        if not outcome.ok or not outcome.messages:
            return outcome, None
        return outcome, dispatcher_pb2.SubmitResponse.FromString(outcome.messages[0]).job

    async def watch(self, job_id: str, deadline: float) -> tuple[Outcome, list[job_pb2.Job]]:
        """Every state the stream reported; it ends by itself at a terminal state."""
        request = dispatcher_pb2.WatchJobRequest(job_id=job_id)
        outcome = await self.transport.call(
            WATCH_JOB, request.SerializeToString(), deadline=deadline, metadata=self.metadata
        )
        return outcome, [
            dispatcher_pb2.WatchJobResponse.FromString(message).job for message in outcome.messages
        ]

    async def get_job(self, job_id: str) -> tuple[Outcome, job_pb2.Job | None]:
        request = dispatcher_pb2.GetJobRequest(job_id=job_id)
        outcome = await self.transport.call(
            GET_JOB, request.SerializeToString(), deadline=self.rpc_timeout, metadata=self.metadata
        )
        if not outcome.ok or not outcome.messages:
            return outcome, None
        return outcome, dispatcher_pb2.GetJobResponse.FromString(outcome.messages[0]).job

    async def list_jobs(
        self, page_size: int, page_token: str = ""
    ) -> tuple[Outcome, reporting_pb2.ListJobsResponse | None]:
        request = reporting_pb2.ListJobsRequest(page_size=page_size, page_token=page_token)
        outcome = await self.transport.call(
            LIST_JOBS,
            request.SerializeToString(),
            deadline=self.rpc_timeout,
            metadata=self.metadata,
        )
        if not outcome.ok or not outcome.messages:
            return outcome, None
        return outcome, reporting_pb2.ListJobsResponse.FromString(outcome.messages[0])
