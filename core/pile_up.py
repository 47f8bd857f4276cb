"""No pile-up: what a round does in a group before posting, by the broadcast's rule (docs/runtime.md,
"No pile-up"). Groups ban accounts whose ads pile up; the user chooses per broadcast:

- `off`: post every round (as before);
- `skip`: when the broadcast's previous post in the group is still the group's last message, skip the
  group this round — counted as skipped, not as a failure;
- `replace`: delete the broadcast's previous post in the group (only that message of this account's,
  and only if it is still there), then post the new one.
"""

from __future__ import annotations

from enum import StrEnum

MODES = ("off", "skip", "replace")
STILL_ON_TOP = "still_on_top"  # the reason a skipped delivery carries


class Step(StrEnum):
    POST = "post"  # post without asking Telegram anything first
    CHECK_LAST = "check_last"  # ask for the group's last message (one request), then skip or post
    DELETE_PREVIOUS = "delete_previous"  # delete the previous post (one request), then post


def step_before_post(mode: str, previous_message_id: int | None) -> Step:
    """The one extra request a rule costs per group per round, and none without a previous post: a
    group never posted to (or whose post's id Telegram did not give back, as on a de-duplicated resend)
    has nothing to compare or delete."""
    if previous_message_id is None or previous_message_id <= 0:
        return Step.POST
    if mode == "skip":
        return Step.CHECK_LAST
    if mode == "replace":
        return Step.DELETE_PREVIOUS
    return Step.POST


def still_on_top(previous_message_id: int, last_message_id: int | None) -> bool:
    """The previous post is the group's last message: posting again would stack two in a row."""
    return last_message_id is not None and last_message_id == previous_message_id


# Telegram's answers to a delete that mean "nothing to delete here, post anyway": the message is gone
# already, or this account may not delete it. Anything else (a flood wait, the network) is the round's
# outcome for the group, as a failed send would be.
DELETE_REFUSALS = frozenset({"MESSAGE_DELETE_FORBIDDEN", "MESSAGE_ID_INVALID", "MESSAGE_IDS_EMPTY",
                             "CHAT_ADMIN_REQUIRED"})
