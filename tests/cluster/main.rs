//! Cluster tests (issue #9). `scripts/cluster` starts nginx in front of several gatehouse
//! instances sharing a PostgreSQL server of its own; these tests talk HTTP to nginx and to
//! each instance directly, and cause faults under a steady load: an instance killed with
//! SIGKILL, one stopped with SIGTERM, PostgreSQL stopped and started again.
//!
//! They need nginx and PostgreSQL's server binaries (Debian's nginx-light and postgresql).
//! Without them the tests print "skipped: …" and pass, unless
//! `GATEHOUSE_CLUSTER_TESTS=required` (as CI sets it), when they fail.
//! `.config/nextest.toml` runs them one at a time: each starts five processes and a load.

mod harness;
mod load;

mod consistency;
mod faults;
