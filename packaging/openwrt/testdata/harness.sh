# Stubs of the OpenWrt shell functions the init script uses, for tests.
# The procd stubs print the instance's command line, one argument a line;
# uci reads "package.section.option=value" lines from $UCI_FILE (a list's
# values separated by spaces).

procd_open_instance() { PROCD_CMD=""; PROCD_PARAMS=""; echo "instance"; }
procd_set_param() {
	local name="$1"; shift
	if [ "$name" = command ]; then
		for a in "$@"; do printf 'arg %s\n' "$a"; done
	else
		printf 'param %s %s\n' "$name" "$*"
	fi
}
procd_append_param() {
	local name="$1"; shift
	[ "$name" = command ] && for a in "$@"; do printf 'arg %s\n' "$a"; done
}
procd_close_instance() { echo "close"; }
procd_add_reload_trigger() { :; }
procd_add_validation() { :; }

uci() {
	[ "$1" = -q ] && shift
	[ "$1" = get ] || return 1
	local line
	line=$(grep -m1 "^$2=" "$UCI_FILE") || return 1
	echo "${line#*=}"
}

# uci_validate_section PACKAGE TYPE SECTION SPEC...: sets a variable per
# SPEC (name:type[:default]); fails on a bool or uinteger that is not one.
# (The real one runs /sbin/validate_data, which checks every type.)
uci_validate_section() {
	local pkg="$1" sec="$3" spec name type def val bad=0
	shift 3
	for spec in "$@"; do
		name=${spec%%:*}
		type=${spec#*:}
		def=""
		case "$type" in *\"*) ;; *:*) def=${type#*:}; type=${type%%:*} ;; esac
		val=$(uci -q get "$pkg.$sec.$name") || val="$def"
		case "$type" in
		bool) case "$val" in ""|0|1) ;; *) bad=1 ;; esac ;;
		uinteger) case "$val" in ""|*[!0-9]*) [ -n "$val" ] && bad=1 ;; esac ;;
		esac
		eval "$name=\$val"
	done
	return $bad
}
