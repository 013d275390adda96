# conffile.awk - makes the packaged /etc/edibroker/edibroker.conf from
# config/edibroker.conf.example, so the two cannot drift apart:
#   - the example's first line (it names `make run`) becomes the package's
#     header;
#   - the demo's relative folders become the system's (./var/state ->
#     /var/lib/edibroker, ./var/spool -> /srv/edi, ./data ->
#     /usr/share/edibroker, where the package installs the schemas);
#   - every value is commented out, so the daemon runs on its defaults;
#   - every endpoint section is commented out, so the service starts and
#     does nothing until an operator configures one.
# Removing the first ';' of a line gives back the example's line.
#
#   awk -f packaging/conffile.awk config/edibroker.conf.example

NR == 1 {
	print "; /etc/edibroker/edibroker.conf - the configuration of edibrokerd; see edibroker.conf(5)."
	print ";"
	print "; Installed by the edibroker package from the example configuration. Every value"
	print "; is commented out, so the broker runs on its defaults, and so is every endpoint:"
	print "; the service starts and does nothing until an endpoint is configured. Remove the"
	print "; first ';' of a line to use it, check the file with"
	print ";   edibrokerd --check-config /etc/edibroker/edibroker.conf"
	print "; and apply it with `systemctl reload edibrokerd` (`systemctl restart edibrokerd`"
	print "; for keys marked (restart)). Spool folders outside /var/lib/edibroker must be"
	print "; made writable for the service: see DEPLOYMENT in edibroker.conf(5)."
	next
}

{
	gsub(/\.\/var\/state/, "/var/lib/edibroker")
	gsub(/\.\/var\/spool/, "/srv/edi")
	gsub(/\.\/data\//, "/usr/share/edibroker/")
}

/^\[endpoint[ \t]/ { endpoints = 1 }

# Blank lines stay; so do comments outside endpoints.
/^[ \t]*$/ { print; next }
/^[ \t]*;/ && !endpoints { print; next }

# Section headers stay (outside endpoints); values and their continuation
# lines, and every line of an endpoint (its comments too), are commented out.
/^\[/ && !endpoints { print; next }
{ print ";" $0 }
