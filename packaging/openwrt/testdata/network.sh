# Stub of /lib/functions/network.sh: interface NAME's subnets come from
# $NET4_NAME and $NET6_NAME.
network_get_subnets() { eval "$1=\${NET4_$2}"; eval "[ -n \"\${NET4_$2}\" ]"; }
network_get_subnets6() { eval "$1=\${NET6_$2}"; eval "[ -n \"\${NET6_$2}\" ]"; }
