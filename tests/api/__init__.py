"""Tests of the user-facing API: errors and the option schema."""
