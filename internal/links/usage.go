package links

// callUsage is what a vendor said one call cost: tokens, when it bills by
// token, and seconds of audio it heard, when it says.
type callUsage struct {
	inputTokens, outputTokens float64
	// tokens says the vendor reported tokens (zero tokens is a report).
	tokens  bool
	seconds float64
}

// add sums o into u (the parts of one recording).
func (u *callUsage) add(o callUsage) {
	u.inputTokens += o.inputTokens
	u.outputTokens += o.outputTokens
	u.tokens = u.tokens || o.tokens
	u.seconds += o.seconds
}
