//! Integration tests of kiln-load: one test binary (STYLE.md), one module per concern.
//! Some tests re-run this binary as child processes (see `processes`).

mod budget;
mod corrupt;
mod disk_errors;
mod disk_usage;
mod heal;
mod layout;
mod leases;
mod outage;
mod processes;
mod single_flight;
mod support;
mod traversal;
mod versions;
