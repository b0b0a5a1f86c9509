//! Tests of the schedule loop.
