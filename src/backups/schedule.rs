//! `backup schedule`: a systemd service and timer, or a cron line, that run the backup part of
//! the reconcile, `tldw-ops apply --only backup --auto-approve FILE`, on the policy's schedule.
//! Rendered with minijinja from the templates below. Pure: the binary, the file and the state
//! location are inputs, so the output is the same on every run (a golden test holds it).
//!
//! The timer only has to fire at least as often as `every`: each run plans, and creates a set
//! only when one is due (with a grace of 1% of `every`, at most 5 minutes, so a timer that fires
//! a few seconds early does not skip a turn). An `every` that fits the calendar (1m..30m dividing
//! an hour, 1h..12h dividing a day, 24h, 7d) fires exactly on it; any other fires on the largest
//! of those periods below it, and a set is made on the first run after it falls due.

use std::path::Path;
use std::time::Duration;

use crate::plan::service::shell_words;

/// Which scheduler to print for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    Systemd,
    Cron,
}

/// When the timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadence {
    /// systemd `OnCalendar=`.
    pub on_calendar: String,
    /// The five cron time fields.
    pub cron: String,
    /// How often that is.
    pub period: Duration,
}

/// The calendar period to fire on for `every` (see the module documentation).
pub fn cadence(every: Duration) -> Cadence {
    const MINUTE: u64 = 60;
    const HOUR: u64 = 3_600;
    const DAY: u64 = 86_400;
    let mut candidates: Vec<(u64, String, String)> = vec![
        (7 * DAY, "weekly".to_string(), "0 0 * * 1".to_string()),
        (DAY, "daily".to_string(), "0 0 * * *".to_string()),
    ];
    for hours in [12, 8, 6, 4, 3, 2] {
        candidates.push((
            hours * HOUR,
            format!("*-*-* 00/{hours}:00:00"),
            format!("0 */{hours} * * *"),
        ));
    }
    candidates.push((HOUR, "hourly".to_string(), "0 * * * *".to_string()));
    for minutes in [30, 20, 15, 12, 10, 6, 5, 4, 3, 2] {
        candidates.push((
            minutes * MINUTE,
            format!("*-*-* *:00/{minutes}:00"),
            format!("*/{minutes} * * * *"),
        ));
    }
    candidates.push((MINUTE, "minutely".to_string(), "* * * * *".to_string()));
    let seconds = every.as_secs().max(MINUTE);
    let (period, on_calendar, cron) = candidates
        .into_iter()
        .find(|(period, _, _)| *period <= seconds)
        .expect("one minute is a candidate and every is at least that");
    Cadence {
        on_calendar,
        cron,
        period: Duration::from_secs(period),
    }
}

/// What goes into a schedule.
#[derive(Debug, Clone)]
pub struct ScheduleInput<'a> {
    pub environment: &'a str,
    pub deployment: &'a str,
    pub every: Duration,
    /// `backup.drill`: restore drills are scheduled too, with `backup drill --if-due`.
    pub drill: Option<Duration>,
    /// The tldw-ops binary, absolute.
    pub binary: &'a Path,
    /// The desired-state file, absolute.
    pub file: &'a Path,
    /// `--state` / `TLDW_OPS_STATE`, when given.
    pub state: Option<&'a str>,
    /// Environment variables the desired state reads (`from_env` secrets).
    pub variables: Vec<String>,
}

const SYSTEMD: &str = r#"# {{ unit }}.service
#
# Runs the backup part of {{ file }}: creates a backup set of environment {{ environment }} when
# one is due (every {{ every }}), verifies it, and deletes the sets the keep policy releases.
# It changes nothing else. Install both units, then: systemctl enable --now {{ unit }}.timer
[Unit]
Description=tldw-ops backups of tldw_server environment {{ environment }}
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
WorkingDirectory={{ directory }}
{% if variables %}# The desired state reads {{ variables | join(", ") }} from the environment: put
# NAME=value lines in this file, mode 0600.
EnvironmentFile={{ environment_file }}
{% endif %}ExecStart={{ command }}
# Backup sets hold the .env and every user's data.
UMask=0077

# {{ unit }}.timer
[Unit]
Description=Back up tldw_server environment {{ environment }} every {{ every }}

[Timer]
{% if exact %}OnCalendar={{ on_calendar }}
# On time, and no RandomizedDelaySec: a run more than {{ grace }} early would skip a turn.
{% else %}# every {{ every }} does not fit the calendar: fire every {{ period }}; a run makes a set only
# once one is due, so a set is made within {{ period }} of falling due.
OnCalendar={{ on_calendar }}
{% endif %}AccuracySec=1s
Persistent=true
Unit={{ unit }}.service

[Install]
WantedBy=timers.target
"#;

const CRON: &str = r#"# tldw-ops backups of tldw_server environment {{ environment }} ({{ file }}): every {{ every }}.
# Each run creates a set only when one is due, verifies it and deletes what the keep policy releases.
{% if not exact %}# every {{ every }} does not fit cron's calendar: runs every {{ period }}, and a set is made within
# {{ period }} of falling due.
{% endif %}{% if variables %}# The desired state reads {{ variables | join(", ") }} from the environment, and cron starts
# with almost none: set them in the crontab (NAME=value lines above this one).
{% endif %}{{ cron }} cd {{ directory_quoted }} && {{ command }}
"#;

const DRILL_SYSTEMD: &str = r#"
# {{ unit }}.service
#
# A restore drill of environment {{ environment }}: when the last drill that passed is at least
# {{ every }} old, restores the newest complete backup set into a scratch copy beside the sets
# and checks it; records the result in the history. The live deployment is not touched.
[Unit]
Description=tldw-ops restore drill of tldw_server environment {{ environment }}

[Service]
Type=oneshot
WorkingDirectory={{ directory }}
{% if variables %}EnvironmentFile={{ environment_file }}
{% endif %}ExecStart={{ command }}
UMask=0077

# {{ unit }}.timer
[Unit]
Description=Restore drill of tldw_server environment {{ environment }} every {{ every }}

[Timer]
OnCalendar={{ on_calendar }}
AccuracySec=1s
Persistent=true
Unit={{ unit }}.service

[Install]
WantedBy=timers.target
"#;

const DRILL_CRON: &str = r#"# The restore drill ({{ every }}): runs only when one is due, and records it in the history.
{{ cron }} cd {{ directory_quoted }} && {{ command }}
"#;

/// The unit name: `tldw-ops-backup-<environment>`, with the deployment when it is not `default`.
pub fn unit_name(deployment: &str, environment: &str) -> String {
    if deployment == "default" {
        format!("tldw-ops-backup-{environment}")
    } else {
        format!("tldw-ops-backup-{deployment}-{environment}")
    }
}

/// Renders the schedule for `scheduler`.
pub fn render(scheduler: Scheduler, input: &ScheduleInput<'_>) -> String {
    let unit = unit_name(input.deployment, input.environment);
    let cadence = cadence(input.every);
    let directory = input
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut variables = input.variables.clone();
    let state = |argv: &mut Vec<String>, variables: &mut Vec<String>| match input.state {
        // A URL may hold a password: it goes in the environment, never in a unit or crontab.
        Some(state) if state.contains("://") => variables.push("TLDW_OPS_STATE".to_string()),
        Some(state) => {
            argv.push("--state".to_string());
            argv.push(state.to_string());
        }
        None => {}
    };
    let mut argv = vec![
        input.binary.display().to_string(),
        "apply".to_string(),
        "--only".to_string(),
        "backup".to_string(),
        "--auto-approve".to_string(),
    ];
    state(&mut argv, &mut variables);
    argv.push(input.file.display().to_string());
    let drill_argv = input.drill.map(|_| {
        let mut argv = vec![
            input.binary.display().to_string(),
            "backup".to_string(),
            "drill".to_string(),
            "--if-due".to_string(),
        ];
        state(&mut argv, &mut Vec::new());
        argv.push("--file".to_string());
        argv.push(input.file.display().to_string());
        argv
    });
    variables.sort();
    variables.dedup();
    let every = crate::plan::backup_policy::human_duration(input.every.as_secs());
    let context = minijinja::context! {
        unit => unit.clone(),
        file => input.file.display().to_string(),
        environment => input.environment,
        every => every,
        directory => directory.display().to_string(),
        directory_quoted => shell_words(&[directory.display().to_string()]),
        variables => variables.clone(),
        environment_file => format!("/etc/tldw-ops/{unit}.env"),
        command => shell_words(&argv),
        on_calendar => cadence.on_calendar,
        cron => cadence.cron,
        exact => cadence.period.as_secs() == input.every.as_secs(),
        period => crate::plan::backup_policy::human_duration(cadence.period.as_secs()),
        grace => crate::plan::backup_policy::human_duration(
            crate::plan::backups::grace(input.every).as_secs(),
        ),
    };
    let environment = minijinja::Environment::new();
    let template = match scheduler {
        Scheduler::Systemd => SYSTEMD,
        Scheduler::Cron => CRON,
    };
    let mut text = environment
        .render_str(template, context)
        .expect("the schedule templates are valid and their context complete");
    // minijinja drops the template's last newline.
    text.push('\n');
    if let (Some(drill), Some(argv)) = (input.drill, drill_argv) {
        let drill_cadence = self::cadence(drill);
        let unit = unit.replacen("tldw-ops-backup-", "tldw-ops-drill-", 1);
        let context = minijinja::context! {
            unit => unit.clone(),
            environment => input.environment,
            every => crate::plan::backup_policy::human_duration(drill.as_secs()),
            directory => directory.display().to_string(),
            directory_quoted => shell_words(&[directory.display().to_string()]),
            variables => variables,
            environment_file => format!("/etc/tldw-ops/{unit}.env"),
            command => shell_words(&argv),
            on_calendar => drill_cadence.on_calendar,
            cron => drill_cadence.cron,
        };
        let template = match scheduler {
            Scheduler::Systemd => DRILL_SYSTEMD,
            Scheduler::Cron => DRILL_CRON,
        };
        text.push_str(
            &environment
                .render_str(template, context)
                .expect("the drill templates are valid and their context complete"),
        );
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fires(every: u64) -> (String, String, u64) {
        let cadence = cadence(Duration::from_secs(every));
        (cadence.on_calendar, cadence.cron, cadence.period.as_secs())
    }

    #[test]
    fn an_every_that_fits_the_calendar_fires_exactly_on_it() {
        assert_eq!(fires(86_400), ("daily".into(), "0 0 * * *".into(), 86_400));
        assert_eq!(fires(3_600), ("hourly".into(), "0 * * * *".into(), 3_600));
        assert_eq!(
            fires(6 * 3_600),
            ("*-*-* 00/6:00:00".into(), "0 */6 * * *".into(), 21_600)
        );
        assert_eq!(
            fires(15 * 60),
            ("*-*-* *:00/15:00".into(), "*/15 * * * *".into(), 900)
        );
        assert_eq!(
            fires(7 * 86_400),
            ("weekly".into(), "0 0 * * 1".into(), 604_800)
        );
    }

    #[test]
    fn any_other_every_fires_on_the_largest_period_below_it() {
        assert_eq!(fires(36 * 3_600).2, 86_400);
        assert_eq!(fires(90 * 60).2, 3_600);
        assert_eq!(fires(7 * 60).2, 360);
        assert_eq!(fires(30 * 86_400).2, 7 * 86_400);
    }
}
