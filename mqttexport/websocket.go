//go:build !paho_nowebsocket && !headless

package mqttexport

// Websockets tells whether this build reaches brokers over ws:// and
// wss://. The router build (-tags paho_nowebsocket) leaves them out.
const Websockets = true

// SchemeNames names the broker URL schemes of this build, for errors.
const SchemeNames = "tcp://, ssl://, ws:// or wss://"
