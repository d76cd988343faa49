//! Test support shared by the end-to-end tests and the benchmark: a fake tldw_server admin API
//! with fault injection, and throwaway PostgreSQL clusters. Not shipped in the binary.

pub mod fake_tldw;
pub mod pg;
