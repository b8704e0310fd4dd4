//go:build headless && linux

package main

import (
	"context"
	"errors"
)

func (*session) screen(context.Context) error {
	return errors.New("this build has no screen")
}
