// Package openwrt holds no Go code for flowtop itself: it tests the OpenWrt
// package in flowtop/ (the procd init script's mapping of
// /etc/config/flowtop to flowtop's flags) against stubbed procd and uci.
package openwrt
