package server

// RaftTimeouts exposes raftTimeouts to the external tests.
var RaftTimeouts = raftTimeouts
