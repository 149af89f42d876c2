//! The command line (API.md §1): `serve` (the default), `migrate`, `createsuperuser`,
//! `changepassword`. Configuration comes from the environment and `.env`; the flags
//! here are only what the contract names.

use crate::app::{self, Application, StartupError};
use crate::config::Config;
use crate::domain::password::UserAttributes;
use crate::domain::{EmailAddress, Username};
use crate::state::AppState;
use crate::store::{NewUser, StoreError, UniqueField};
use clap::{Parser, Subcommand};
use secrecy::SecretString;
use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;

#[derive(Debug, Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "User authentication and management service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default when no command is given).
    Serve {
        /// Listen address; overrides GATEHOUSE_BIND.
        #[arg(long, value_name = "ADDR:PORT")]
        bind: Option<SocketAddr>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Create a staff superuser.
    Createsuperuser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a user's password (ends all of that user's sessions).
    Changepassword {
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// A failure of a command, printed as one line; the exit code is 1.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(fields) => CommandError::Invalid(
                fields
                    .iter()
                    .map(|f| match f {
                        UniqueField::Username => "Error: That username is already taken.",
                        UniqueField::Email => "Error: That email is already taken.",
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            other => CommandError::Startup(StartupError::Database(other)),
        }
    }
}

pub async fn run(cli: Cli, config: Config) -> Result<(), CommandError> {
    match cli.command.unwrap_or(Command::Serve { bind: None }) {
        Command::Serve { bind } => {
            let config = Config {
                bind: bind.unwrap_or(config.bind),
                ..config
            };
            Application::build(config)
                .await?
                .run_until_stopped()
                .await?;
            Ok(())
        }
        Command::Migrate => {
            app::prepare(config).await?;
            println!("Migrations applied.");
            Ok(())
        }
        Command::Createsuperuser {
            username,
            email,
            password_stdin,
        } => {
            let state = app::prepare(config).await?;
            create_superuser(&state, &username, &email, password_stdin).await
        }
        Command::Changepassword {
            username,
            password_stdin,
        } => {
            let state = app::prepare(config).await?;
            change_password(&state, &username, password_stdin).await
        }
    }
}

async fn create_superuser(
    state: &AppState,
    username: &str,
    email: &str,
    password_stdin: bool,
) -> Result<(), CommandError> {
    let username = Username::parse(username)
        .map_err(|m| CommandError::Invalid(format!("username: {}", m.join(" "))))?;
    let email = EmailAddress::parse(email)
        .map_err(|m| CommandError::Invalid(format!("email: {}", m.join(" "))))?;
    let password = read_password(password_stdin)?;
    let attributes = UserAttributes {
        username: Some(username.as_str()),
        email: Some(email.as_str()),
        ..Default::default()
    };
    state
        .policy
        .validate(&password, attributes)
        .map_err(|m| CommandError::Invalid(format!("password: {}", m.join(" "))))?;
    let password_hash = state
        .hasher
        .hash(SecretString::from(password))
        .await
        .map_err(|e| CommandError::Invalid(e.to_string()))?;
    let user = NewUser {
        username,
        email,
        password_hash,
        first_name: String::new(),
        last_name: String::new(),
        is_active: true,
        is_staff: true,
        is_superuser: true,
    };
    state.store.insert_user(&user, chrono::Utc::now()).await?;
    println!("Superuser created successfully.");
    Ok(())
}

async fn change_password(
    state: &AppState,
    username: &str,
    password_stdin: bool,
) -> Result<(), CommandError> {
    let credentials = state
        .store
        .credentials_by_username(username)
        .await?
        .ok_or_else(|| CommandError::Invalid(format!("user '{username}' does not exist")))?;
    let user = credentials.user;
    let password = read_password(password_stdin)?;
    let attributes = UserAttributes {
        username: Some(&user.username),
        email: Some(&user.email),
        first_name: Some(&user.first_name),
        last_name: Some(&user.last_name),
    };
    state
        .policy
        .validate(&password, attributes)
        .map_err(|m| CommandError::Invalid(format!("password: {}", m.join(" "))))?;
    let hash = state
        .hasher
        .hash(SecretString::from(password))
        .await
        .map_err(|e| CommandError::Invalid(e.to_string()))?;
    let now = chrono::Utc::now();
    if !state
        .store
        .set_password(user.id, &hash, None, None, now)
        .await?
    {
        return Err(CommandError::Invalid(format!(
            "user '{}' was deleted meanwhile",
            user.username
        )));
    }
    println!("Password changed successfully for user '{}'", user.username);
    Ok(())
}

/// API.md §1: `--password-stdin`, else `GATEHOUSE_SUPERUSER_PASSWORD`, else a prompt asked
/// twice without echo. Only the line ending is removed; the password is never trimmed.
fn read_password(from_stdin: bool) -> Result<String, CommandError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let password = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(&line);
        return Ok(password.to_owned());
    }
    if let Ok(password) = std::env::var("GATEHOUSE_SUPERUSER_PASSWORD") {
        return Ok(password);
    }
    if !std::io::stdin().is_terminal() {
        return Err(CommandError::Invalid(
            "no password given: use --password-stdin or set GATEHOUSE_SUPERUSER_PASSWORD"
                .to_owned(),
        ));
    }
    let first = rpassword::prompt_password("Password: ")?;
    let second = rpassword::prompt_password("Password (again): ")?;
    if first != second {
        return Err(CommandError::Invalid(
            "Error: Your passwords didn't match.".to_owned(),
        ));
    }
    Ok(first)
}
