//! The examples and exit codes each command's `--help` ends with (`after_help`), in the
//! manner of `terraform plan -help`. They are snapshot-tested, and README's exit code table is
//! the reference they follow.

pub const TOP_HELP: &str = "\
Examples:
  tldw-ops validate prod.yaml
  tldw-ops plan prod.yaml --out plan.json && tldw-ops apply plan.json

Exit codes:
  0   success: nothing to do, or done
  1   an error (unreadable file, unreachable server, no terminal to confirm on, ...)
  2   changes pending (--detailed-exitcode) or drift found
  3   invalid desired state, or a policy violation
  4   stale plan: the deployment or the YAML moved since the plan was made
  5   locked: another apply holds this environment
  6   the apply failed and was rolled back
  7   needs attention: a rollback failed, or an unfinished apply exists
  64  usage error: an unknown command or flag, a missing or malformed argument

`tldw-ops help COMMAND` shows each command's examples and exit codes.";

pub const VALIDATE_HELP: &str = "\
Examples:
  tldw-ops validate prod.yaml
  tldw-ops validate prod.yaml --format json | jq '.diagnostics[].code'

Exit codes:
  0   valid (warnings allowed)
  1   the file cannot be read
  3   invalid, or a production policy error
  64  usage error";

pub const SCHEMA_HELP: &str = "\
Examples:
  tldw-ops schema > tldw-ops.schema.json
  tldw-ops schema plan > plan.schema.json

Exit codes:
  0   printed
  64  usage error";

pub const PLAN_HELP: &str = "\
Examples:
  tldw-ops plan prod.yaml --diff
  tldw-ops plan prod.yaml --format markdown --diff --out plan.json > plan.md

Exit codes:
  0   no changes (or changes, without --detailed-exitcode)
  1   an error: unreadable file, unreachable server, state store
  2   changes pending (with --detailed-exitcode)
  3   invalid desired state, or a policy violation in what apply would leave
  7   an unfinished apply exists: `apply --resume` or `rollback --unfinished`
  64  usage error";

pub const APPLY_HELP: &str = "\
Examples:
  tldw-ops apply prod.yaml                    # plan, confirm with `yes`, apply
  tldw-ops apply plan.json --auto-approve     # exactly the reviewed plan, or exit 4

Exit codes:
  0   applied, or nothing to do
  1   an error (no terminal to confirm on, unreadable file, ...)
  3   invalid desired state, or a policy violation
  4   the saved plan is stale; nothing was applied
  5   another apply holds the lock for this environment
  6   a step failed and everything was rolled back
  7   needs attention: a rollback failed, or an unfinished apply exists
  64  usage error";

pub const ROLLBACK_HELP: &str = "\
Examples:
  tldw-ops rollback --last
  tldw-ops rollback --unfinished --auto-approve

Exit codes:
  0   restored, or nothing to do
  1   an error (unknown apply id, no checkpoint, no terminal to confirm on, ...)
  3   invalid desired state, or a policy violation
  5   another apply holds the lock for this environment
  6   the rollback failed and was itself undone
  7   needs attention: an undo failed
  64  usage error";

pub const DRIFT_HELP: &str = "\
Examples:
  tldw-ops drift prod.yaml                    # in cron: exit 2 means drift
  tldw-ops drift prod.yaml --adopt env.LOG_LEVEL

Exit codes:
  0   no drift
  1   an error: unreadable file, unreachable server, state store
  2   something changed outside tldw-ops
  3   invalid desired state
  7   an unfinished apply exists
  64  usage error";

pub const HISTORY_HELP: &str = "\
Examples:
  tldw-ops history --environment prod
  tldw-ops history --format json --limit 5

Exit codes:
  0   listed
  1   the state store cannot be read
  64  usage error";

pub const SHOW_HELP: &str = "\
Examples:
  tldw-ops show 20261126T031634Z-04fd3b
  tldw-ops show plan.json                     # a plan saved with `plan --out`

Exit codes:
  0   shown
  1   no such apply, an unreadable plan file, or the state store cannot be read
  64  usage error";

pub const IMPORT_HELP: &str = "\
Examples:
  tldw-ops import --root /srv/tldw_server --out prod.yaml --environment prod
  tldw-ops import --root /srv/tldw_server --api http://127.0.0.1:8000 --token-env TLDW_ADMIN_TOKEN

Exit codes:
  0   written
  1   an error: unreadable deployment, unreachable API, refused token, existing --out file
  64  usage error";

pub const STATE_HELP: &str = "\
Examples:
  tldw-ops state list
  tldw-ops state unlock --force prod.yaml

Exit codes:
  0   done
  1   an error: the state store cannot be read or written
  64  usage error";

pub const SECRETS_HELP: &str = "\
Examples:
  tldw-ops secrets status prod.yaml

Exit codes:
  0   listed
  1   an error: unreadable file, state store
  3   invalid desired state
  64  usage error";

pub const ENVDIFF_HELP: &str = "\
Examples:
  tldw-ops envdiff staging.yaml prod.yaml
  tldw-ops envdiff staging.yaml prod.yaml --detailed-exitcode

Exit codes:
  0   listed (or no difference, with --detailed-exitcode)
  1   an error: an unreadable file
  2   the environments differ (with --detailed-exitcode)
  3   a desired state is invalid
  64  usage error";

pub const PROMOTE_HELP: &str = "\
Examples:
  tldw-ops promote --from staging --to prod
  tldw-ops promote --from staging --to prod --dir environments --format json

Exit codes:
  0   explained; the gate passes
  1   an error: unreadable file, state store
  3   the gate refuses the promotion now, or a desired state is invalid
  64  usage error";

pub const BACKUP_HELP: &str = "\
Examples:
  tldw-ops backup list prod.yaml
  tldw-ops backup verify --file prod.yaml
  tldw-ops backup schedule --print systemd prod.yaml

Exit codes:
  0   done
  1   an error, or a set failed verification or restore
  3   invalid desired state
  64  usage error";

pub const COMPLETIONS_HELP: &str = "\
Examples:
  tldw-ops completions bash > /etc/bash_completion.d/tldw-ops
  tldw-ops completions zsh > \"${fpath[1]}/_tldw-ops\"
  tldw-ops completions fish > ~/.config/fish/completions/tldw-ops.fish

Exit codes:
  0   printed
  64  usage error (an unknown shell)";

pub const MAN_HELP: &str = "\
Examples:
  tldw-ops man | man -l -
  tldw-ops man plan > tldw-ops-plan.1

Exit codes:
  0   printed
  64  usage error (an unknown command)";

pub const STATE_LIST_HELP: &str = "\
Examples:
  tldw-ops state list
  tldw-ops state list --format json --state postgres://tldw-ops@db/tldw_ops

Exit codes:
  0   listed
  1   the state store cannot be read
  64  usage error";

pub const STATE_UNLOCK_HELP: &str = "\
Examples:
  tldw-ops state unlock --force prod.yaml
  tldw-ops state unlock --force --environment research/prod

Exit codes:
  0   unlocked, or there was no lock
  1   an error: no --force, the state store cannot be written
  64  usage error";

pub const STATE_MIGRATE_HELP: &str = "\
Examples:
  tldw-ops state migrate --from .tldw-ops/state.db --to postgres://tldw-ops@db/tldw_ops

Exit codes:
  0   copied (again: nothing new to copy)
  1   an error: a store cannot be read or written, or the two disagree
  64  usage error";

pub const SECRETS_STATUS_HELP: &str = "\
Examples:
  tldw-ops secrets status prod.yaml
  tldw-ops secrets status prod.yaml --format json

Exit codes:
  0   listed
  1   an error: unreadable file, state store
  3   invalid desired state
  64  usage error";

pub const BACKUP_LIST_HELP: &str = "\
Examples:
  tldw-ops backup list prod.yaml
  tldw-ops backup list prod.yaml --format json

Exit codes:
  0   listed
  1   an error: unreadable file or destination
  3   invalid desired state
  64  usage error";

pub const BACKUP_VERIFY_HELP: &str = "\
Examples:
  tldw-ops backup verify --file prod.yaml
  tldw-ops backup verify 2026-11-25T030000Z --file prod.yaml

Exit codes:
  0   every set checked is intact
  1   a set failed verification, or an error
  3   invalid desired state
  64  usage error";

pub const BACKUP_DRILL_HELP: &str = "\
Examples:
  tldw-ops backup drill --file prod.yaml
  tldw-ops backup drill 2026-11-25T030000Z --keep --file prod.yaml
  PGPASSWORD=... tldw-ops backup drill --postgres-url postgres://tldw@db/tldw_drill

Exit codes:
  0   the set restored into the scratch copy and every check passed
  1   the drill failed (the problems are listed), or an error
  3   invalid desired state
  64  usage error";

pub const BACKUP_RESTORE_HELP: &str = "\
Examples:
  tldw-ops backup restore 2026-11-25T030000Z --file prod.yaml
  tldw-ops backup restore 2026-11-25T030000Z --only config --server-stopped

Exit codes:
  0   restored, and the health gates pass
  1   an error: no such set, the safety backup or the restore failed
  3   invalid desired state
  7   needs attention: an unfinished apply exists
  64  usage error";

pub const BACKUP_SCHEDULE_HELP: &str = "\
Examples:
  tldw-ops backup schedule --print systemd prod.yaml
  tldw-ops backup schedule --print cron prod.yaml >> /etc/cron.d/tldw-ops

Exit codes:
  0   printed
  1   an error: unreadable file, no backup policy
  3   invalid desired state
  64  usage error";
