//! kevent facade
