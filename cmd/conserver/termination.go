package main

import (
	"os"
	"strings"
	"unicode/utf8"
)

// envTerminationLog names the file the worker writes its fatal error to;
// the default is the kubelet's terminationMessagePath. Tests point it
// elsewhere.
const (
	envTerminationLog     = "CONSERVER_TERMINATION_LOG"
	defaultTerminationLog = "/dev/termination-log"
)

// maxTerminationMessage is the kubelet's limit for one container's
// message; it truncates beyond it anyway.
const maxTerminationMessage = 4096

// writeTerminationMessage puts the error that ends the worker where the
// kubelet reads it into the pod's status (lastState.terminated.message),
// so that the operator can show it in the Chain's Ready condition. It is
// best effort: the file is only written when it exists (the kubelet
// mounts it; on a laptop there is none and none is created), and a
// failure is ignored, since the exit status and stderr already say the
// same. The message is the one logged, and like the log it names keys
// and variables, never option values.
func writeTerminationMessage(getenv func(string) string, msg string) {
	path := getenv(envTerminationLog)
	if path == "" {
		path = defaultTerminationLog
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = f.WriteString(truncateMessage(msg, maxTerminationMessage))
}

// truncateMessage cuts msg to at most limit bytes, on a rune boundary,
// marking the cut.
func truncateMessage(msg string, limit int) string {
	if len(msg) <= limit {
		return msg
	}
	const mark = " …(truncated)"
	cut := limit - len(mark)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return strings.ToValidUTF8(msg[:cut], "") + mark
}
