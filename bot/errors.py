"""Domain errors: they carry data, never Slack wording (see ``bot.messages``).

Authorization that cannot be decided is ``authz.ports.AuthzUnavailable`` (or
``AuthzEvaluationError``): one class for it, raised by the authorization layer itself."""

from __future__ import annotations

import enum
from datetime import date


class PmbotError(Exception):
    """Base of the errors that ``bot.messages.user_message`` turns into user text."""


class PermissionDenied(PmbotError):
    def __init__(self, action: str, resource: str | None = None) -> None:
        super().__init__(f"{action} on {resource}" if resource else action)
        self.action = action
        self.resource = resource


class NotLinked(PmbotError):
    """The Slack user has no linked identity yet."""


class RelinkRequired(PmbotError):
    """The person's permissions could not be refreshed (no usable refresh token, or the
    grant was revoked): they have none until they link again."""


class UnknownCommand(PmbotError):
    def __init__(self, command: str) -> None:
        super().__init__(command)
        self.command = command


class InputTooLong(PmbotError):
    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"{length} > {limit}")
        self.length = length
        self.limit = limit


class ServiceUnavailable(PmbotError):
    """A dependency (identity provider, calendar...) could not be reached."""

    def __init__(self, service: str) -> None:
        super().__init__(service)
        self.service = service


# -- projects and tasks -------------------------------------------------------------------


class NameProblem(enum.StrEnum):
    """Why a project name or task title was refused."""

    EMPTY = "empty"
    TOO_LONG = "too_long"
    CONTROL_CHARACTERS = "control_characters"


class ProjectAction(enum.StrEnum):
    """What a person was refused on a project or task they may see."""

    CREATE_PROJECT = "create_project"
    SHARE = "share"
    CREATE_TASK = "create_task"
    EDIT_TASK = "edit_task"


class Usage(enum.StrEnum):
    """A projects subcommand, named in the refusal of a malformed one."""

    PROJECTS = "projects"
    PROJECT = "project"
    PROJECT_NEW = "project new"
    PROJECT_SHARE = "project share"
    PROJECT_UNSHARE = "project unshare"
    PROJECT_MEMBERS = "project members"
    STATUS = "status"
    TASKS = "tasks"
    TASK = "task"
    TASK_ADD = "task add"
    TASK_DONE = "task done"


class CommandHint(enum.StrEnum):
    """What exactly is wrong with a malformed projects command."""

    MISSING_ARGUMENTS = "missing_arguments"
    UNKNOWN_ACTION = "unknown_action"
    UNEXPECTED_WORDS = "unexpected_words"
    PERSON_EXPECTED = "person_expected"
    TITLE_NOT_QUOTED = "title_not_quoted"
    DATE_EXPECTED = "date_expected"
    TASK_ID_EXPECTED = "task_id_expected"


class MalformedCommand(PmbotError):
    def __init__(self, usage: Usage, hint: CommandHint = CommandHint.MISSING_ARGUMENTS) -> None:
        super().__init__(f"{usage.value}: {hint.value}")
        self.usage = usage
        self.hint = hint


class InvalidProjectName(PmbotError):
    def __init__(self, problem: NameProblem, limit: int) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.limit = limit


class InvalidTaskTitle(PmbotError):
    def __init__(self, problem: NameProblem, limit: int) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.limit = limit


class ProjectNameTaken(PmbotError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class ProjectNotFound(PmbotError):
    """No project of that name that the asker may view (the two are not told apart)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class ProjectActionDenied(PermissionDenied):
    """The person may view the project (or is in the workspace) but not do this."""

    def __init__(self, project_action: ProjectAction, project: str) -> None:
        super().__init__(project_action.value, project)
        self.project_action = project_action
        self.project = project


class UnknownRole(PmbotError):
    def __init__(self, role: str, roles: tuple[str, ...]) -> None:
        super().__init__(role)
        self.role = role
        self.roles = roles


class PersonNotFound(PmbotError):
    def __init__(self, reference: str) -> None:
        super().__init__(reference)
        self.reference = reference


class AmbiguousPerson(PmbotError):
    def __init__(self, reference: str, count: int) -> None:
        super().__init__(f"{reference}: {count}")
        self.reference = reference
        self.count = count


class NotAPerson(PmbotError):
    """The name belongs to an app, a bot or a deactivated account."""

    def __init__(self, reference: str) -> None:
        super().__init__(reference)
        self.reference = reference


class NoProjectRole(PmbotError):
    def __init__(self, project: str, slack_user_id: str) -> None:
        super().__init__(f"{project}: {slack_user_id}")
        self.project = project
        self.slack_user_id = slack_user_id


class LastOwner(PmbotError):
    def __init__(self, project: str, slack_user_id: str) -> None:
        super().__init__(f"{project}: {slack_user_id}")
        self.project = project
        self.slack_user_id = slack_user_id


class TaskNotFound(PmbotError):
    """No task with that id that the asker may view (the two are not told apart)."""

    def __init__(self, task_id: int) -> None:
        super().__init__(str(task_id))
        self.task_id = task_id


class TaskActionDenied(PermissionDenied):
    def __init__(self, task_id: int) -> None:
        super().__init__(ProjectAction.EDIT_TASK.value, f"task:{task_id}")
        self.task_id = task_id


class InvalidDueDate(PmbotError):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class DueDateInPast(PmbotError):
    def __init__(self, due: date, today: date) -> None:
        super().__init__(f"{due.isoformat()} < {today.isoformat()}")
        self.due = due
        self.today = today


# -- the agent: channels and the plain commands of its tools -------------------------------


class ChannelNotFound(PmbotError):
    """No channel of that name or id that pmbot can see in this workspace."""

    def __init__(self, reference: str) -> None:
        super().__init__(reference)
        self.reference = reference


class NotInChannel(PmbotError):
    """The asker is not a member of the channel they want to post to."""

    def __init__(self, channel_id: str) -> None:
        super().__init__(channel_id)
        self.channel_id = channel_id


class NoEmail(PmbotError):
    """Slack does not tell this person's email, so they cannot be invited."""

    def __init__(self, slack_user_id: str) -> None:
        super().__init__(slack_user_id)
        self.slack_user_id = slack_user_id


class CommandProblem(enum.StrEnum):
    """Why a plain agent command (``/pm events``, ``schedule``, ``post``, ``delete``) was
    refused."""

    EVENTS_RANGE = "events_range"
    SCHEDULE_TITLE = "schedule_title"
    DATE_MISSING = "date_missing"
    DATE_UNREADABLE = "date_unreadable"
    TIME_MISSING = "time_missing"
    TIME_UNREADABLE = "time_unreadable"
    DURATION_UNREADABLE = "duration_unreadable"
    IN_THE_PAST = "in_the_past"
    PERSON_EXPECTED = "person_expected"
    UNEXPECTED_WORDS = "unexpected_words"
    POST_CHANNEL = "post_channel"
    POST_TEXT = "post_text"
    DELETE_WHAT = "delete_what"


class BadCommand(PmbotError):
    """A plain agent command that could not be read; ``text`` is the offending part (shown
    quoted and made inert)."""

    def __init__(self, problem: CommandProblem, text: str = "") -> None:
        super().__init__(f"{problem.value}: {text}" if text else problem.value)
        self.problem = problem
        self.text = text


# -- approvals ----------------------------------------------------------------------------


class ApprovalProblem(enum.StrEnum):
    """Why an approval could not be asked for, or why an approved action did not run."""

    NO_APPROVER = "no_approver"  # nobody linked holds `approver` on the projects
    NOTHING_TO_DO = "nothing_to_do"  # e.g. "delete all my projects" when one owns none
    PERSON_NOT_LINKED = "person_not_linked"  # the new owner has no linked identity
    ALREADY_OWNER = "already_owner"
    BAD_ARGUMENTS = "bad_arguments"
    PROJECT_GONE = "project_gone"  # at execution: the project no longer exists
    REQUESTER_NOT_ALLOWED = "requester_not_allowed"  # at execution: lost access meanwhile
    APPROVER_NOT_ALLOWED = "approver_not_allowed"  # at execution: no longer an approver
    NOT_FINISHED = "not_finished"  # "ask again" on an approval that is still open
    NOT_YOURS = "not_yours"


class ApprovalRefused(PmbotError):
    """An approval cannot be asked for (or asked again); ``target`` names what it was about."""

    def __init__(self, problem: ApprovalProblem, target: str = "") -> None:
        super().__init__(f"{problem.value}: {target}" if target else problem.value)
        self.problem = problem
        self.target = target


class ApprovedActionInvalid(PmbotError):
    """At execution time the approved action is no longer valid or authorized."""

    def __init__(self, problem: ApprovalProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem


class AuditNotAllowed(PmbotError):
    """``/pm audit``: the asker owns no project (``project`` None) or not this one."""

    def __init__(self, project: str | None) -> None:
        super().__init__(project or "")
        self.project = project
