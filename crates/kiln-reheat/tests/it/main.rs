//! Integration tests of kiln-reheat: end-to-end reheats against a test HTTP site, bad
//! input, fencing, pruning, the zero-miss window, render-through and worker crashes.

mod bad_input;
mod mem;
mod reheat;
mod site;
mod support;
mod worker;
