"""Operators, tokens and the permission table (issue 14): tokens shown once and stored as a hash,
expiry and revocation, constant-time comparison, names normalised, the table's own consistency."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update

from access import operators as opmod
from access.operators import OperatorError, Operators, clean_name
from access.permissions import PERMISSIONS, ROLES, TWO_PERSON, USE_CASES, Caller, Forbidden, authorize, roles_for
from db.engine import make_engine, migrate
from db.repo import Repo
from db.tables import OperatorTokenRow


@pytest.fixture
def ops(tmp_path) -> Operators:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    migrate(url)
    return Operators(Repo(make_engine(url)))


def test_a_token_is_shown_once_and_stored_only_as_its_hash(ops):
    op = ops.add("Wang Li", ["supervisor"])
    issued = ops.issue_token("Wang Li")
    with ops.repo.session() as s:
        row = s.get(OperatorTokenRow, issued.token_id)
    secret = opmod.TOKEN_RE.fullmatch(issued.token).group(2)
    assert secret not in row.secret_hash and issued.token not in row.secret_hash
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    caller = ops.authenticate(issued.token)
    assert caller is not None and caller.operator_id == op.id and caller.roles == ("supervisor",)
    assert op.id.startswith("op-") and "Wang" not in op.id


def test_wrong_revoked_or_expired_tokens_and_disabled_operators_are_refused(ops):
    ops.add("Li Na", ["viewer"])
    a, b, c = (ops.issue_token("Li Na") for _ in range(3))
    assert ops.authenticate(a.token[:-1] + ("A" if a.token[-1] != "A" else "B")) is None
    assert ops.authenticate("") is None and ops.authenticate("dev-token") is None
    assert ops.revoke(a.token_id) and ops.authenticate(a.token) is None
    assert not ops.revoke(a.token_id)  # already revoked
    with ops.repo.session() as s:
        s.execute(
            update(OperatorTokenRow)
            .where(OperatorTokenRow.id == b.token_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        s.commit()
    assert ops.authenticate(b.token) is None
    assert ops.authenticate(c.token) is not None
    ops.disable("Li Na")
    assert ops.authenticate(c.token) is None
    with pytest.raises(OperatorError):
        ops.issue_token("Li Na")


def test_token_checks_compare_hashes_in_constant_time(ops, monkeypatch):
    """Every check, known token id or not, goes through hmac.compare_digest of two SHA-256 hex digests."""
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(opmod.hmac, "compare_digest", spy)
    ops.add("Zhao", ["viewer"])
    good = ops.issue_token("Zhao")
    assert ops.authenticate(good.token) is not None
    assert ops.authenticate("ct_000000000000_" + "x" * 43) is None  # unknown id: a dummy hash is compared
    assert ops.authenticate("garbage") is None
    assert calls == [(64, 64)] * 3


def test_names_are_normalised_and_blank_or_invisible_ones_refused(ops):
    assert clean_name("  Ｗａｎｇ Li ") == "Wang Li"
    for bad in ("   ", "\u200b", "\u200f", "Wang\u202eiL", "a\x00b", ""):
        with pytest.raises(OperatorError):
            clean_name(bad)
    ops.add("Wang Li", ["viewer"])
    with pytest.raises(OperatorError, match="exists already"):
        ops.add("Ｗａｎｇ Li", ["viewer"])
    with pytest.raises(OperatorError, match="roles are"):
        ops.add("Somebody", ["root"])


def test_the_permission_table_names_only_known_roles_and_use_cases():
    assert set(PERMISSIONS) == set(ROLES)
    used = set().union(*PERMISSIONS.values())
    assert used == set(USE_CASES), "a use case nobody may perform, or an unknown one"
    assert all(roles_for(u) for u in USE_CASES)
    assert all(v in USE_CASES for v in TWO_PERSON.values())
    assert roles_for("operators.manage") == ("admin",)  # admin manages operators and nothing else


def test_authorize_names_the_roles_needed_and_gives_the_actor():
    viewer = Caller("op-000000000001", ["viewer"])
    with pytest.raises(Forbidden, match="compliance"):
        authorize(viewer, "hold.release.complaint")
    with pytest.raises(Forbidden):
        authorize(None, "case.read")
    actor = authorize(Caller("op-000000000002", ["viewer", "compliance"]), "hold.release.complaint")
    assert actor.operator_id == "op-000000000002" and actor.role == "compliance"
