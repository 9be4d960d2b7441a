//! Integration tests of kiln-server: handlers through `router(state).oneshot(req)`, and one
//! test over a real listener.

mod api;
mod auth;
mod cache;
mod connections;
mod dashboard;
mod files;
mod heal;
mod leases;
mod listener;
mod openapi;
mod outage;
mod support;
