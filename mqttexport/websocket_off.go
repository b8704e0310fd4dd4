//go:build paho_nowebsocket || headless

package mqttexport

// Websockets tells whether this build reaches brokers over ws:// and
// wss://. This one, the router build (-tags headless), has none: paho's websockets bring
// gorilla/websocket and net/http, some 0.7 MB of a mips binary
// (third_party/paho.mqtt.golang/FORK.md), for a transport a router's
// exporter rarely needs: its broker is on the LAN, on tcp:// or ssl://.
const Websockets = false

// SchemeNames names the broker URL schemes of this build, for errors.
const SchemeNames = "tcp:// or ssl://"
