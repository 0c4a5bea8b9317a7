"""Schema 2: runs and jobs share one status vocabulary (``completed`` runs become ``succeeded``).

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The words schema 1 wrote (modelyard.status.LEGACY then), frozen here: a later change there must not change this step.
_RENAMED = {"completed": "succeeded"}


def upgrade() -> None:
    runs = sa.table("runs", sa.column("status", sa.String))
    for old, new in _RENAMED.items():
        op.execute(runs.update().where(runs.c.status == old).values(status=new))


def downgrade() -> None:
    pass  # "succeeded" reads as done in either schema
