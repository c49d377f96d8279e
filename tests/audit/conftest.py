from __future__ import annotations

import pytest

from runestone.audit import AuditLog, Redactor
from runestone.audit.checkpoint import Signer
from runestone.home import layout
from runestone.identity import create_identity


@pytest.fixture
def runtime(isolated_home):
    """An initialised runtime: identity, keys and an audit log with small segments."""
    where = layout()
    identity = create_identity(where)
    log = AuditLog(where.audit_dir, identity.runtime_id,
                   signer=Signer(where.private_key_file),
                   redactor=Redactor(where.redaction_key_file.read_bytes()),
                   segment_bytes=4096, checkpoint_every=10)
    yield where, identity, log
    log.close()
