#!/bin/sh
# Exit 0 when the web root answers.
test -f "$(dirname "$0")/../../../srv/www/index.html"
