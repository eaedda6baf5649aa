//! Command-line arguments: parsed first into raw clap values, then checked in `commands`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// The image `render --job` runs by default: this release's, never a moving tag.
pub const JOB_IMAGE: &str = concat!("ghcr.io/wbstack/wbstack:", env!("CARGO_PKG_VERSION"));

#[derive(Parser, Debug)]
#[command(
    name = "wbstack",
    version,
    about = "Bootstrap a self-managed W&B deployment with Weave on AWS and Kubernetes, resume it after any failure, and tear it down."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Where environments keep their journal, lock and plan copy: a directory, or
    /// s3://BUCKET/PREFIX shared by a team [default: the plan's spec.state, else .wbstack].
    #[arg(
        long,
        global = true,
        env = "WBSTACK_STATE_DIR",
        value_name = "DIR|s3://BUCKET/PREFIX"
    )]
    pub state_dir: Option<String>,
    /// Output: text for people, json for machines (one JSON object per line).
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Diagnostic logs on stderr: -v debug, -vv trace, -vvv trace for libraries too
    /// (`WBSTACK_LOG` takes a full filter instead). Secret values are scrubbed from every line.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Allow a plain-HTTP AWS endpoint on another machine (`WBSTACK_AWS_ENDPOINT`,
    /// `spec.aws.endpoint`); without it, plain HTTP is for this machine (loopback) only.
    #[arg(long, global = true)]
    pub insecure_endpoint: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct Target {
    /// The plan file (for resume, status and down: defaults to the copy saved by `up`).
    #[arg(long, short = 'p')]
    pub plan: Option<PathBuf>,
    /// The environment name, when no plan file is given.
    #[arg(long, short = 'e')]
    pub env: Option<String>,
    /// Run against an embedded emulated cluster kept in the state directory: no cloud account,
    /// no cluster.
    #[arg(long)]
    pub sandbox: bool,
    /// The kubeconfig context (default: the plan's, then the current one).
    #[arg(long)]
    pub context: Option<String>,
}

/// `verify` at the end of `up` and `resume`.
#[derive(Args, Debug, Clone, Default)]
pub struct VerifyOpts {
    /// Once the run succeeds, run `verify` (as `spec.verify: true` does every time); a failed
    /// probe makes the exit code 7.
    #[arg(long)]
    pub verify: bool,
    #[command(flatten)]
    pub probe: ProbeOpts,
}

/// How `verify` probes.
#[derive(Args, Debug, Clone, Default)]
pub struct ProbeOpts {
    /// Do not check the W&B host's certificate (said in the findings).
    #[arg(long)]
    pub skip_certificate: bool,
    /// Probe from where wbstack runs rather than from a Job inside the cluster: the stores
    /// only the cluster reaches are then skipped, and the bucket is probed with a token issued
    /// for the pods' ServiceAccount.
    #[arg(long)]
    pub from_here: bool,
    /// The probe Job's image (default: this release's wbstack image, as `render --job`; the
    /// Job `render --job` makes runs its probe Job with its own image).
    #[arg(long, value_name = "IMAGE", env = "WBSTACK_PROBE_IMAGE")]
    pub probe_image: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct RunOpts {
    /// Concurrent mutating calls at most.
    #[arg(long, default_value_t = 16)]
    pub parallelism: usize,
    /// On a failed step: keep what was made (so `resume` continues) or roll back what this run made.
    #[arg(long, value_enum, default_value_t = OnFailure::Keep)]
    pub on_failure: OnFailure,
    /// Overrides the plan's readiness timeout, in seconds.
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Skip one of `up`'s checks before its first change (kubernetes-version, storage-class,
    /// storage-capacity, ingress-class, pull-secrets, weave-env, node-capacity, capacity,
    /// aws-identity); repeatable.
    #[arg(long, value_name = "NAME", value_parser = crate::preflight::CHECKS)]
    pub skip_preflight: Vec<String>,
    /// Let `up` replace this step's resource (destroy it, then make it again) when the plan
    /// wants a setting only a new one can have, like another database name; repeatable.
    /// Without it such a change is refused. Only a resource this environment made is replaced,
    /// and its data goes with it.
    #[arg(long, value_name = "STEP")]
    pub replace: Vec<String>,
    /// Give this secret a new value and change its users over without a moment of refused
    /// connections (for `aws.redis-auth`, the ElastiCache AUTH token: the group takes both
    /// tokens, W&B rolls with the new one, then the old one stops working); repeatable. A
    /// rotation cut off is finished by the next `up` or `resume`, with or without the flag.
    #[arg(long, value_name = "STEP")]
    pub rotate: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnFailure {
    Keep,
    Rollback,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Mermaid,
}

impl Command {
    /// Whether the command changes nothing anywhere (it only reads and prints).
    pub fn read_only(&self) -> bool {
        matches!(
            self,
            Command::Validate { .. }
                | Command::Plan { .. }
                | Command::Status { .. }
                | Command::Output { .. }
                | Command::Report { .. }
                | Command::Verify { .. }
                | Command::List
                | Command::Graph { .. }
                | Command::Render { .. }
                | Command::Images { .. }
                | Command::Schema
                | Command::Completions { .. }
        )
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a plan file; nothing is touched.
    Validate {
        /// Plan files.
        #[arg(required = true)]
        plans: Vec<PathBuf>,
    },
    /// Show what `up` would create, change or leave alone; nothing is touched.
    Plan {
        #[command(flatten)]
        target: Target,
        /// Exit 0 when `up` would change nothing, 2 when it would, 1 on any error (for CI).
        #[arg(long)]
        detailed_exitcode: bool,
        /// Preview `up --replace STEP`: a replacement of this environment's resource is shown as
        /// `up` would then make it, not as refused.
        #[arg(long, value_name = "STEP")]
        replace: Vec<String>,
    },
    /// Bring the environment up (continues an unfinished run).
    Up {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        run: RunOpts,
        #[command(flatten)]
        check: VerifyOpts,
    },
    /// Continue an interrupted or failed run from its journal.
    Resume {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        run: RunOpts,
        #[command(flatten)]
        check: VerifyOpts,
    },
    /// Bring up a new environment from another's data: its database from a point in time or
    /// a snapshot of the source's, its Redis from a snapshot, the source's bucket used as it is,
    /// with the new environment's own KMS key, IAM role and Secrets. The new environment is a
    /// plan like any other, derived from the source's saved plan: `resume`, `status`, `report`
    /// and `down` take `--env NEW`.
    Restore {
        /// The new environment's name.
        #[arg(long, short = 'e')]
        env: String,
        /// The environment whose data is restored (its saved plan is the base).
        #[arg(long)]
        from: String,
        /// A point in time of the source's database (RFC 3339), or `latest`.
        #[arg(
            long,
            required_unless_present = "snapshot",
            conflicts_with = "snapshot"
        )]
        to_time: Option<String>,
        /// A snapshot of the source's database instead (such as the final snapshot `down` kept).
        #[arg(long)]
        snapshot: Option<String>,
        /// The ElastiCache snapshot Redis starts from (default: the newest of the source's).
        #[arg(long)]
        redis_snapshot: Option<String>,
        /// The new environment's namespace (default: its name).
        #[arg(long)]
        namespace: Option<String>,
        /// The kubeconfig context (default: the plan's, then the current one).
        #[arg(long)]
        context: Option<String>,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Prove the data paths work, as the W&B pods use them: one probe per path, each with a
    /// verdict (pass, warn, fail, skip), what it checked, what it saw and what to do; exit 7
    /// when one failed. The probes run from where wbstack runs and read only the live resource,
    /// its workloads and the Secrets they name.
    Verify {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        probe: ProbeOpts,
        /// The probe Job's side: run the probes its environment orders and print the findings.
        #[arg(long, hide = true)]
        in_pod: bool,
    },
    /// Show each step's state, age and endpoint, from the journal.
    Status {
        #[command(flatten)]
        target: Target,
    },
    /// A run's timeline: each step's observe, apply, wait and retries, the critical path, the
    /// outputs (references, never values) and the events; `--html FILE` writes it as a
    /// self-contained page.
    Report {
        #[command(flatten)]
        target: Target,
        /// The run (default: the last).
        #[arg(long)]
        run: Option<u64>,
        /// Also write the report as an HTML page to this file.
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// The environments the state directory holds: resources owned, last run, lock.
    List,
    /// The environment's URL, endpoints, identifiers and Secret references (never values).
    Output {
        #[command(flatten)]
        target: Target,
    },
    /// Tear the environment down: what it created, dependents first.
    Down {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        run: RunOpts,
        /// Tear down a protected environment (lifting the database's deletion protection).
        #[arg(long)]
        force: bool,
        /// Also remove the resources this environment adopted (that existed before it).
        #[arg(long)]
        remove_adopted: bool,
        /// Find what the environment owns by its AWS tags and Kubernetes labels, for what its
        /// journal does not record (a lost state directory; implied when there is no journal).
        #[arg(long)]
        discover: bool,
        /// Delete the database without its final snapshot and automated backups (by default
        /// they are kept, and `down` says where).
        #[arg(long)]
        skip_final_snapshot: bool,
    },
    /// Print the step graph.
    Graph {
        #[arg(long, short = 'p')]
        plan: PathBuf,
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
    },
    /// Print the WeightsAndBiases resource and ClickHouse manifests as YAML.
    Render {
        #[arg(long, short = 'p')]
        plan: PathBuf,
        /// Instead: the manifests that run `up` for this plan as a Kubernetes Job (ServiceAccount,
        /// least-privilege RBAC, the plan in a ConfigMap, a claim for the state).
        #[arg(long)]
        job: bool,
        /// The Job's namespace.
        #[arg(long, default_value = "wbstack", requires = "job")]
        job_namespace: String,
        /// The wbstack image the Job runs (this release's, by default; a digest pins it:
        /// `ghcr.io/wbstack/wbstack@sha256:...`).
        #[arg(long, default_value = JOB_IMAGE, requires = "job")]
        image: String,
        /// An IAM role for the Job's ServiceAccount (IRSA), for the AWS steps.
        #[arg(long, requires = "job")]
        role_arn: Option<String>,
        /// Instead: the IAM policy wbstack's own credentials need for this plan (every action
        /// its AWS steps call, on the plan's resources by name), as JSON.
        #[arg(long, conflicts_with = "job")]
        iam_policy: bool,
    },
    /// Remove an environment's lock, given its holder's lock id (the error that names the
    /// holder shows it); only that lease is removed.
    Unlock {
        #[command(flatten)]
        target: Target,
        /// The holder's lock id.
        #[arg(long)]
        lock_id: String,
    },
    /// Every image the plan deploys, through its registry (spec.images.registry), with what
    /// uses it: the list to mirror for an air-gapped install. Nothing is contacted.
    Images {
        #[arg(long, short = 'p')]
        plan: PathBuf,
    },
    /// Print the JSON Schema of plan files.
    Schema,
    /// Print shell completions.
    Completions { shell: clap_complete::Shell },
    /// The sandbox's AWS for one environment: a local moto behind the proxy that answers as AWS
    /// does, until stopped (started by `--sandbox` commands, stopped by `down`).
    #[command(hide = true)]
    SandboxAws {
        #[arg(long)]
        dir: PathBuf,
    },
}
