"""Keeping in touch with the departments outside the bureau (§4.4).

"视情况与南宁市宣传部、应急办、维稳办、综治办、公安机关等部门及时沟通": each contact is
recorded (who, which department, when, what was said), and a notice goes to a named department
on demand, through the notification activity, once per request.

Both are facts, so a repeat records or sends nothing more (a caller retrying, or a second
person reporting the same call): a contact already recorded (same department, moment and
words) is refused as a repeat, and so is a notice whose `request_id` was sent, the id
defaulting to one derived from the department and the message. A second notice of the same
words, meant as such, names a new `request_id`.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from yuqing.decider import moment
from yuqing.models import DepartmentContact, DepartmentNotice
from yuqing.outcomes import Notify, Outcome, RefusalKind, Refused
from yuqing.roles import OUTSIDE_BODIES, Role
from yuqing.rules.base import RulesBase
from yuqing.state import DepartmentContactRecord, DepartmentNoticeRecord, contact_key

MAX_CONTACTS = 100
LIAISONS = (Role.office, Role.publicity_lead, Role.leadership_group)


class ContactRules(RulesBase):
    def _decides_contacts(self) -> None:
        self.decides("record_contact", DepartmentContact, self._record_contact)
        self.decides("notify_department", DepartmentNotice, self._notify_department)

    def _record_contact(self, contact: DepartmentContact, at: datetime) -> Outcome:
        self.require_open()
        role = self.may_send("record_contact", contact.recorded_by, LIAISONS)
        self._outside(contact.department)
        if contact.contacted_at > at:
            raise Refused(f"contacted_at {moment(contact.contacted_at)} is in the future")
        if len(self.state.contacts) >= MAX_CONTACTS:
            raise Refused(f"an incident records at most {MAX_CONTACTS} contacts")
        known = self.roster.contact(contact.department)
        name = known.name if known else contact.department.value
        fact = contact_key(contact.department.value, contact.contacted_at, contact.said)
        same = next((c for c in self.state.contacts if c.key() == fact), None)
        if same is not None:
            raise Refused(
                f"this contact with {name} at {moment(contact.contacted_at)} was already "
                f"recorded by {same.recorded_by} at {moment(same.at)}: a contact is recorded once",
                RefusalKind.conflict,
            )
        self.state.contacts.append(
            DepartmentContactRecord(
                department=contact.department.value,
                department_name=name,
                recorded_by=contact.recorded_by,
                contacted_at=contact.contacted_at,
                contact_person=contact.contact_person,
                said=contact.said,
                at=at,
            )
        )
        person = f" ({contact.contact_person})" if contact.contact_person else ""
        self.record(
            at,
            "contact",
            f"contact with {name}{person} at {moment(contact.contacted_at)}: {contact.said}",
            actor=contact.recorded_by,
            role=role,
            message=self.plan_said(
                "msg.contact_person" if contact.contact_person else "msg.contact",
                department_name=name,
                contact_person=contact.contact_person,
                contacted_at=contact.contacted_at.isoformat(),
                said=contact.said,
            ),
        )
        return Outcome()

    def _notify_department(self, notice: DepartmentNotice, at: datetime) -> Outcome:
        self.require_open()
        role = self.may_send("notify_department", notice.requested_by, LIAISONS)
        self._outside(notice.department)
        known = self.roster.contact(notice.department)
        if known is None:
            raise Refused(
                f"roster {self.roster.version} has no contact for {notice.department}: add one "
                "under [[contacts]]",
                RefusalKind.conflict,
            )
        request_id = notice.request_id or _request_id(notice)
        sent = next((n for n in self.state.department_notices if n.request_id == request_id), None)
        if sent is not None:
            # The same request again (a retry, say): it was sent once and is not sent twice.
            again = "" if notice.request_id else " (to send these words again, give a request_id)"
            raise Refused(
                f"notice {request_id} to {sent.department_name} was already sent at "
                f"{moment(sent.at)}: a notice is sent once{again}",
                RefusalKind.conflict,
            )
        if len(self.state.department_notices) >= MAX_CONTACTS:
            raise Refused(f"an incident sends at most {MAX_CONTACTS} department notices")
        self.state.department_notices.append(
            DepartmentNoticeRecord(
                request_id=request_id,
                department=notice.department.value,
                department_name=known.name,
                requested_by=notice.requested_by,
                message=notice.message,
                at=at,
            )
        )
        self.record(
            at,
            "department_notice",
            f"notice {request_id} to {known.name}: {notice.message}",
            actor=notice.requested_by,
            role=role,
            message=self.plan_said(
                "msg.department_notice",
                request_id=request_id,
                department_name=known.name,
                text=notice.message,
            ),
        )
        effect = Notify(
            key=f"department/{request_id}",
            kind="department_notice",
            subject=self.subject(f"情况通报 / notice: {self.state.title}"),
            body=notice.message,
            roles=[notice.department],
            summary=f"notify {notice.department}",
            text=self._text(
                "department_notice", message=notice.message, requester_person=notice.requested_by
            ),
        )
        return Outcome(effects=[effect])

    @staticmethod
    def _outside(department: Role) -> None:
        if department not in OUTSIDE_BODIES:
            bodies = ", ".join(sorted(OUTSIDE_BODIES))
            raise Refused(
                f"{department} is not a department outside the bureau; one of {bodies}",
                RefusalKind.malformed,
            )


def _request_id(notice: DepartmentNotice) -> str:
    """The id of a notice sent without one: the same department and words, the same id."""
    words = f"{notice.department.value}\n{notice.message}".encode()
    return f"n-{hashlib.sha256(words).hexdigest()[:12]}"
