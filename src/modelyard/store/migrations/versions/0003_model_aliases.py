"""Schema 3: the ``model_aliases`` table (``NAME@ALIAS``); no alias exists yet, so bare names keep their versions.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A schema-2 store opened by a release that created every table of its metadata may have it already.
    if "model_aliases" in sa.inspect(op.get_bind()).get_table_names():
        return
    op.create_table(
        "model_aliases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("alias", sa.String(32), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("model_aliases")
