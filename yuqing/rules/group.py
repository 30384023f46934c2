"""The leading group as a group (§3, §5.1): its members per incident, and how it decides.

The policy says, per grade, whether the head alone, any one member, a quorum of N of the
incident's chosen members, or all of them decide. Every matter the group decides (a draft, a
"no response needed", an interview, a downgrade) goes through `group_vote`, which returns the
group's answer as soon as there is one: under a quorum, once N have approved or once so many
have refused that N approvals can no longer come; under "all", at the first refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from yuqing.models import Approval, Decision, Grade, GroupMembers
from yuqing.outcomes import Notify, Outcome, RefusalKind, Refused
from yuqing.roles import Role
from yuqing.rules.base import RulesBase
from yuqing.state import GroupChoice, GroupVote


@dataclass(frozen=True)
class Verdict:
    """The group's answer on a matter, once it has one."""

    decision: Decision
    # The member whose vote decided, and everyone who voted that way.
    decided_by: str
    voters: tuple[str, ...]
    comment: str
    # "2 of 3 members", or "" where one person decides.
    tally: str


class GroupRules(RulesBase):
    def _decides_group(self) -> None:
        self.decides("choose_group_members", GroupMembers, self._choose_members)

    # -- who is in the group for this incident -------------------------------------------------

    def group_members(self) -> list[str]:
        choice = self.state.group_choice
        if choice is not None:
            return list(choice.members)
        return self.roster.holders(Role.leadership_group)

    def group_heads(self) -> list[str]:
        return self.roster.holders(Role.leadership_group_head)

    def group_notice(
        self,
        key: str,
        kind: str,
        subject: str,
        body: str,
        summary: str,
        text: dict[str, Any] | None = None,
    ) -> Notify:
        """A notice to the group: its chosen members, or everyone in it when none are chosen."""
        choice = self.state.group_choice
        if choice is None:
            roles = [Role.leadership_group]
            people: tuple[str, ...] = ()
        else:
            roles, people = [], tuple(choice.members)
        return Notify(
            key=key,
            kind=kind,
            subject=self.subject(subject),
            body=body,
            roles=roles,
            summary=summary,
            people=people,
            text=text,
        )

    def _choose_members(self, choice: GroupMembers, at: datetime) -> Outcome:
        self.require_open()
        self.may_send(
            "choose_group_members",
            choice.chosen_by,
            (Role.leadership_group_head, Role.leadership_group),
        )
        heads = self.group_heads()
        if heads:
            self.require(choice.chosen_by, Role.leadership_group_head)
            role = Role.leadership_group_head
        else:
            role = self.require(choice.chosen_by, Role.leadership_group)
        members = list(dict.fromkeys(choice.members))
        outsiders = [m for m in members if not self.roster.holds(m, Role.leadership_group)]
        if outsiders:
            raise Refused(
                f"{', '.join(outsiders)} not in the leading group (roster {self.roster.version})",
                RefusalKind.forbidden,
            )
        for grade in [self.state.grade] if self.state.grade else list(Grade):
            needed = self._needed(grade, len(members))
            if needed > len(members):
                raise Refused(
                    f"{len(members)} member(s) are too few: for a {grade} incident the policy "
                    f"needs {needed} to approve"
                )
        pending = self._pending_matters()
        if pending:
            raise Refused(
                f"the group is still deciding {', '.join(pending)}: its members can change "
                "once that is decided"
            )
        earlier = self.state.group_choice
        number = earlier.number + 1 if earlier else 1
        self.state.group_choice = GroupChoice(
            members=members, chosen_by=choice.chosen_by, reason=choice.reason, at=at, number=number
        )
        why = f" ({choice.reason})" if choice.reason else ""
        self.record(
            at,
            "group_members",
            f"leading group members for this incident: {', '.join(members)}{why}",
            actor=choice.chosen_by,
            role=role,
            message=self.plan_said(
                "msg.group_members_why" if choice.reason else "msg.group_members",
                people=list(members),
                reason=choice.reason,
            ),
        )
        notice = Notify(
            key=f"group/members-{number}",
            kind="group_members",
            subject=self.subject(f"领导小组成员: {self.state.title}"),
            body=f"You are among the leading group's members for this incident: "
            f"{', '.join(members)}{why}. Decisions: {self._rule_text()}.",
            roles=[],
            summary="notify the chosen members of the leading group",
            people=tuple(members),
            text=self._text("group_members", members_person=list(members)),
        )
        return Outcome(effects=[notice])

    # -- deciding as a group ---------------------------------------------------------------------

    def group_vote(
        self,
        matter: str,
        title: str,
        member: str,
        decision: Decision,
        comment: str,
        at: datetime,
    ) -> Verdict | None:
        """Count one member's vote on `matter`; the group's verdict, or None while it waits.

        Raises `Refused` (and changes nothing) when the member may not vote on it.
        """
        grade = self.state.grade or Grade.general
        rule = self.policy.group_rule(grade)
        self.require(member, Role.leadership_group)
        if matter in self.state.group_decided:
            raise Refused(f"the leading group has already decided {title}")
        members = self.group_members()
        if rule.decides == "head":
            if not self.roster.holds(member, Role.leadership_group_head):
                heads = ", ".join(self.group_heads()) or "nobody in the roster"
                raise Refused(
                    f"for a {grade} incident the policy has the leading group's head decide "
                    f"alone ({heads}); {member} is not its head",
                    RefusalKind.forbidden,
                )
        elif member not in members:
            raise Refused(
                f"{member} is not among the leading group's members for this incident "
                f"({', '.join(members)})",
                RefusalKind.forbidden,
            )
        if any(v.matter == matter and v.member == member for v in self.state.group_votes):
            raise Refused(f"{member} has already voted on {title}")
        needed = self._needed(grade, len(members))
        if needed > len(members):
            raise Refused(
                f"the leading group has {len(members)} member(s) for this incident and the "
                f"policy needs {needed} to approve: choose more members"
            )
        if rule.decides in ("any", "head"):
            # One person's answer is the group's: no tally to keep.
            self.state.group_decided.append(matter)
            return Verdict(decision, member, (member,), comment, "")
        self.state.group_votes.append(
            GroupVote(matter=matter, member=member, decision=decision, comment=comment, at=at)
        )
        votes = [v for v in self.state.group_votes if v.matter == matter and v.member in members]
        approvals = [v for v in votes if v.decision is Decision.approve]
        rejections = [v for v in votes if v.decision is Decision.reject]
        verb = "approved" if decision is Decision.approve else "rejected"
        why = f" ({comment})" if comment else ""
        tally = (
            f"{len(approvals)} approval(s), {len(rejections)} rejection(s); "
            f"{needed} of {len(members)} needed"
        )
        self.record(
            at,
            "group_vote",
            f"{title}: {member} {verb}{why}; {tally}",
            actor=member,
            role=Role.leadership_group,
            message=self.plan_said(
                f"msg.group_vote_{verb}" + ("_why" if comment else ""),
                matter=title,
                person=member,
                comment=comment,
                approvals=len(approvals),
                rejections=len(rejections),
                needed=needed,
                members=len(members),
            ),
        )
        if len(approvals) >= needed:
            verdict = Decision.approve
            voters = approvals
        elif len(rejections) > len(members) - needed:
            # Not enough members are left to approve it: the wait ends now.
            verdict = Decision.reject
            voters = rejections
        else:
            return None
        self.state.group_decided.append(matter)
        reasons = "; ".join(f"{v.member}: {v.comment}" for v in voters if v.comment)
        return Verdict(
            verdict,
            member,
            tuple(v.member for v in voters),
            reasons,
            f"{len(voters)} of {len(members)} members",
        )

    def group_approval(self, approval: Approval, at: datetime) -> Approval | None:
        """The leading group's step of a statement chain: the group's answer on the draft, as
        one approval, or None while it waits for more members."""
        if not self.rules_on:
            return approval
        version = approval.draft_version
        verdict = self.group_vote(
            f"draft-{version}",
            f"draft version {version}",
            approval.approver_id,
            approval.decision,
            approval.comment,
            at,
        )
        if verdict is None:
            return None
        comment = "; ".join(c for c in (verdict.comment or approval.comment, verdict.tally) if c)
        return Approval(
            approver_id=verdict.decided_by,
            decision=verdict.decision,
            draft_version=version,
            comment=comment,
        )

    def _needed(self, grade: Grade, members: int) -> int:
        rule = self.policy.group_rule(grade)
        if rule.decides == "quorum":
            return rule.quorum or 1
        if rule.decides == "all":
            return members
        return 1

    def _pending_matters(self) -> list[str]:
        voted = dict.fromkeys(v.matter for v in self.state.group_votes)
        return [m for m in voted if m not in self.state.group_decided]

    def _rule_text(self) -> str:
        return "; ".join(f"{grade}: {self.policy.group_rule(grade).describe()}" for grade in Grade)
