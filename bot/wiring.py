"""The composition root: opens every engine, session and client, and closes them in reverse.

Nothing is built at import time; ``open_deps`` is the only place that wires collaborators.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

import aiohttp
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from authz.factory import AuthzConfig, open_authorizer
from authz.ports import Authorizer
from bot.agent.channels import SlackChannels
from bot.agent.loop import open_agent_loop
from bot.agent.registry import ToolRegistry
from bot.agent.requests import AgentRequests
from bot.agent.runner import ToolRunner
from bot.agent.service import AgentService
from bot.agent.services import AgentServices
from bot.approvals.actions import ProjectActions
from bot.approvals.ciba import Auth0CibaClient
from bot.approvals.ports import ApprovalRequests
from bot.approvals.service import ApprovalsService
from bot.audit import AuditLog
from bot.dedup import Deduplicator
from bot.identity.auth0 import Auth0Client
from bot.identity.crypto import TokenCipher
from bot.identity.grants import Grants
from bot.identity.service import IdentityService
from bot.identity.slack_directory import WebApiDirectory
from bot.identity.tokens import JwksCache, TokenVerifier
from bot.knowledge.answers import AnswerService, open_answers
from bot.knowledge.factory import open_knowledge
from bot.knowledge.ports import AuthorizedRetriever
from bot.metrics import Registry
from bot.projects.people import SlackPeople
from bot.projects.service import ProjectsService
from bot.providers.google_calendar import GoogleCalendarClient
from bot.providers.ports import CalendarApi, SlackAsUser
from bot.providers.slack_user import SlackUserClient
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.outbox import Outbox
from bot.vault.client import VaultClient
from bot.vault.connect import ConnectFlows
from bot.vault.my_account import MyAccountApi
from bot.vault.ports import Connection, ConnectLinks, TokenVault

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Deps:
    """Everything handlers and services need, built once per process."""

    settings: Settings
    db: Database
    slack: AsyncWebClient
    http: aiohttp.ClientSession
    metrics: Registry
    dedup: Deduplicator
    authz: Authorizer  # the decision cache, in front of the configured engine
    knowledge: AuthorizedRetriever  # exact authorized top-k over RETRIEVAL_BACKEND
    identity: IdentityService
    outbox: Outbox
    directory: WebApiDirectory
    auth0: Auth0Client
    projects: ProjectsService
    answers: AnswerService  # questions answered from what their readers may view
    # -- approvals: CIBA --
    ciba: Auth0CibaClient  # /bc-authorize and the CIBA grant (bot.approvals.ports.CibaClient)
    agent: AgentService  # tools run as the asker: plain commands and the model's calls
    # Token Vault: provider tokens for the asker (cached in memory), and the links that
    # connect a provider account; set ``connect.resume_hook`` to resume waiting requests.
    vault: VaultClient
    connect: ConnectFlows
    # Provider APIs called as the person with their Token Vault token.
    calendar: CalendarApi  # Google Calendar v3 at GOOGLE_CALENDAR_API_URL
    slack_as_user: SlackAsUser  # chat.postMessage with the person's user token
    # -- approvals --
    audit: AuditLog  # append-only: every tool call and approval transition
    approvals: ApprovalsService  # bot.approvals.ports.ApprovalRequests, and all after it


def build_slack_client(
    settings: Settings, session: aiohttp.ClientSession | None = None
) -> AsyncWebClient:
    """Web API client; 429s are retried honouring ``Retry-After``. A shared session keeps
    connections to Slack open between calls."""
    return AsyncWebClient(
        token=settings.bot_token,
        base_url=settings.slack_api_url,
        session=session,
        timeout=10,
        retry_handlers=[
            AsyncRateLimitErrorRetryHandler(max_retry_count=3),
            AsyncConnectionErrorRetryHandler(max_retry_count=1),
        ],
    )


def authz_config(settings: Settings) -> AuthzConfig:
    return AuthzConfig(
        engine=settings.authz_engine.value,
        fga_api_url=settings.fga_api_url,
        fga_store_id=settings.fga_store_id,
        fga_model_id=settings.fga_model_id,
        fga_api_token=(
            settings.fga_api_token.get_secret_value() if settings.fga_api_token else None
        ),
        timeout_ms=settings.fga_timeout_ms,
        cache_ttl=settings.authz_cache_ttl_seconds,
    )


def build_auth0(settings: Settings) -> Auth0Client:
    assert settings.auth0_domain and settings.auth0_client_id
    secret = settings.auth0_client_secret
    return Auth0Client(
        domain=settings.auth0_domain,
        protocol=settings.auth0_protocol,
        client_id=settings.auth0_client_id,
        client_secret=secret.get_secret_value() if secret else "",
        audience=settings.auth0_audience,
        timeout=settings.auth0_timeout_seconds,
    )


def build_vault(
    settings: Settings,
    *,
    db: Database,
    http: aiohttp.ClientSession,
    auth0: Auth0Client,
    grants: Grants,
    cipher: TokenCipher,
) -> tuple[VaultClient, ConnectFlows]:
    """Token Vault and the Connected Accounts flow, with the connections of settings."""
    vault = VaultClient(
        db=db,
        grants=grants,
        exchange=auth0,
        connections={
            Connection.GOOGLE_CALENDAR: settings.token_vault_calendar_connection,
            Connection.SLACK: settings.token_vault_slack_connection,
        },
        default_scopes={
            Connection.GOOGLE_CALENDAR: frozenset(settings.token_vault_calendar_scopes.split()),
            Connection.SLACK: frozenset(settings.token_vault_slack_scopes.split()),
        },
        expiry_margin=timedelta(seconds=settings.token_vault_expiry_margin_seconds),
    )
    connect = ConnectFlows(
        db=db,
        cipher=cipher,
        grants=grants,
        tokens=auth0,
        my_account=MyAccountApi(
            base_url=auth0.my_account_audience, http=http, timeout=settings.auth0_timeout_seconds
        ),
        vault=vault,
        base_url=settings.base_url,
        ttl=timedelta(seconds=settings.connect_ttl_seconds),
    )
    return vault, connect


@asynccontextmanager
async def open_deps(settings: Settings, *, metrics: Registry | None = None) -> AsyncIterator[Deps]:
    registry = metrics or Registry()
    async with AsyncExitStack() as stack:
        db = Database(settings.database_url)
        stack.push_async_callback(db.dispose)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        authorizer = await stack.enter_async_context(
            open_authorizer(authz_config(settings), engine=db.engine)
        )
        registry.add_collector("pmbot_authz_cache", "Authorization decisions", authorizer.stats)
        auth0 = build_auth0(settings)
        stack.callback(auth0.close)
        verifier = TokenVerifier(
            jwks=JwksCache(jwks_url=f"{auth0.base_url}/.well-known/jwks.json", session=http),
            issuer=settings.auth0_issuer,
            leeway=settings.id_token_leeway_seconds,
        )
        knowledge = await stack.enter_async_context(
            open_knowledge(settings, db=db, authorizer=authorizer)
        )
        slack = build_slack_client(settings, http)
        directory = WebApiDirectory(slack)
        cipher = TokenCipher(settings.encryption_keyring)
        identity = IdentityService(
            db=db,
            auth0=auth0,
            verifier=verifier,
            cipher=cipher,
            authorizer=authorizer,
            directory=directory,
            callback_url=f"{settings.base_url}/auth/callback",
            link_base_url=settings.base_url,
            link_ttl=timedelta(seconds=settings.link_ttl_seconds),
        )
        outbox = Outbox(db=db, authorizer=authorizer)
        ciba = Auth0CibaClient(
            auth0=auth0,
            verifier=verifier,
            issuer=settings.auth0_issuer,
            max_workers=settings.approval_poll_concurrency,
        )
        stack.callback(ciba.close)
        answers = await stack.enter_async_context(
            open_answers(settings, db=db, slack=slack, knowledge=knowledge, identities=identity)
        )
        vault, connect = build_vault(
            settings,
            db=db,
            http=http,
            auth0=auth0,
            grants=Grants(db=db, auth0=auth0, verifier=verifier, cipher=cipher),
            cipher=cipher,
        )
        stack.push_async_callback(connect.close)
        people = SlackPeople(slack)
        projects = ProjectsService(db=db, authorizer=authorizer, outbox=outbox, people=people)
        audit = AuditLog(db=db)
        # The Slack side of approvals is a handler module (its words and blocks live
        # there); imported here, when wiring, as bot.web does for the link notifier.
        from handlers.approvals import SlackApprovalNotifier

        approvals = ApprovalsService(
            db=db,
            authz=authorizer,
            audit=audit,
            ciba=ciba,
            notifier=SlackApprovalNotifier(slack),
            executor=ProjectActions(projects),
            ttl=timedelta(seconds=settings.approval_ttl_seconds),
            poll_concurrency=settings.approval_poll_concurrency,
        )
        calendar = GoogleCalendarClient(
            base_url=settings.google_calendar_api_url,
            session=http,
            timeout=settings.provider_timeout_seconds,
        )
        slack_as_user = SlackUserClient(
            base_url=settings.slack_api_url,
            session=http,
            timeout=settings.provider_timeout_seconds,
            bot=slack,
        )
        agent = await stack.enter_async_context(
            open_agent(
                settings,
                db=db,
                slack=slack,
                authorizer=authorizer,
                knowledge=knowledge,
                projects=projects,
                people=people,
                identity=identity,
                vault=vault,
                connect=connect,
                calendar=calendar,
                slack_as_user=slack_as_user,
                audit=audit,
                approvals=approvals,
            )
        )
        # A request that waited for a connected account resumes once it is connected.
        connect.resume_hook = agent.resume
        yield Deps(
            settings=settings,
            db=db,
            slack=slack,
            http=http,
            metrics=registry,
            dedup=Deduplicator(db=db, ttl=timedelta(seconds=settings.event_dedup_ttl_seconds)),
            authz=authorizer,
            knowledge=knowledge,
            identity=identity,
            outbox=outbox,
            directory=directory,
            auth0=auth0,
            projects=projects,
            answers=answers,
            ciba=ciba,
            vault=vault,
            connect=connect,
            agent=agent,
            calendar=calendar,
            slack_as_user=slack_as_user,
            audit=audit,
            approvals=approvals,
        )


@asynccontextmanager
async def open_agent(
    settings: Settings,
    *,
    db: Database,
    slack: AsyncWebClient,
    authorizer: Authorizer,
    knowledge: AuthorizedRetriever,
    projects: ProjectsService,
    people: SlackPeople,
    identity: IdentityService,
    vault: TokenVault,
    connect: ConnectLinks,
    calendar: CalendarApi,
    slack_as_user: SlackAsUser,
    audit: AuditLog,
    approvals: ApprovalRequests,
) -> AsyncIterator[AgentService]:
    """The agent: its tools, their runner, the model loop (with OPENAI_MODEL) and the
    requests waiting for a connected account. Destructive tools only ask ``approvals``
    for an approval that a human confirms (CIBA): nothing destructive runs on request."""
    registry = ToolRegistry()
    runner = ToolRunner(registry=registry, timeout=settings.agent_tool_timeout_seconds)
    services = AgentServices(
        settings=settings,
        projects=projects,
        knowledge=knowledge,
        authz=authorizer,
        people=people,
        audit=audit,
        approvals=approvals,
        vault=vault,
        calendar=calendar,
        slack_as_user=slack_as_user,
        connect=connect,
        channels=SlackChannels(slack),
    )
    async with open_agent_loop(settings, runner=runner, registry=registry) as loop:
        yield AgentService(
            services=services,
            runner=runner,
            loop=loop,
            requests=AgentRequests(
                db=db, ttl=timedelta(seconds=settings.agent_request_ttl_seconds)
            ),
            identities=identity,
            slack=slack,
        )
