package server

// RaftTimeouts exposes raftTimeouts to the external tests.
var RaftTimeouts = raftTimeouts

// EvaluateCompliance runs one evaluation of the leader's compliance loop.
var EvaluateCompliance = (*Server).evaluateCompliance
