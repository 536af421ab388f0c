//! Black-box tests: the real app on port 0, a fresh database per test, HTTP only.
//! Each test runs on SQLite and, when RIPOSTE_TEST_POSTGRES_URL is set, on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

mod access;
mod accounts;
mod announcements;
mod api;
mod audit;
mod authoring;
mod backup;
mod board_scale;
mod boards;
mod browser;
mod challenges;
mod cli;
mod competition;
mod console_browser;
mod editing;
mod event;
mod exports;
mod families;
mod flags;
mod hardening;
mod hints;
mod learn;
mod moderation;
mod openapi;
mod pages;
mod people;
mod playground;
mod query;
mod queue_admin;
mod scale_out;
mod scoring;
mod starter;
mod teams;
mod trust;
mod worker_crash;
mod writeups;
