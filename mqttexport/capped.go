package mqttexport

import (
	"net"
	"net/url"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// CappedConnection is a paho connection function (ClientOptions.
// SetCustomOpenConnectionFn) for clients that read what others publish:
// it dials as paho does and passes on at most maxPayload+1 bytes of each
// PUBLISH payload, so that a message over the cap costs maxPayload bytes
// of memory, not its size twice (see limitedConn). The handler then sees
// a payload one byte over the cap and refuses it. cut, when not nil, is
// told the real size of each payload cut, in the order the messages
// arrive (paho delivers them in that order with SetOrderMatters(true)), so
// that the refusal can say how big the message was.
func CappedConnection(maxPayload int, cut func(payload int)) mqtt.OpenConnectionFunc {
	return func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		c, err := dial(uri, o)
		if err != nil {
			return nil, err
		}
		lc := newLimitedConn(c, maxPayload, &inboundStats{})
		lc.onCut = cut
		return lc, nil
	}
}
