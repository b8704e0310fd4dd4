package mqttexport

import (
	"errors"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// NetworkCause returns the cause inside paho's connect error "network
// Error : <cause>" (a dial or TLS failure), so that the one line a user
// reads says "dial tcp 10.0.0.1:1883: connect: connection refused"; any
// other error is returned as it is.
func NetworkCause(err error) error {
	if !errors.Is(err, packets.ErrorNetworkError) {
		return err
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range u.Unwrap() {
			if e != nil && !errors.Is(e, packets.ErrorNetworkError) {
				return e
			}
		}
	}
	return err
}
