"""A netizen post's state, read from its own workflow for its incident.

The child only nudges its incident ("post p1 changed"); what the post now is comes from here, a
query of the child, so no signal from outside can tell the incident a post is answered.
"""

from __future__ import annotations

from temporalio import activity

from yuqing.effects import ReadPost
from yuqing.state import PostState


class PostReadingActivities:
    @activity.defn
    async def read_post(self, request: ReadPost) -> PostState:
        handle = activity.client().get_workflow_handle(request.workflow_id)
        state: PostState = await handle.query("state", result_type=PostState)
        # The post keeps its own trail; the incident lists the post without it.
        return state.model_copy(update={"trail": [], "trail_offset": 0})
