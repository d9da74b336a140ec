#!/bin/bash
# Healthy when the server greets a client on its TCP port (the handshake names the server's
# version): no account needed, and nothing answers there during the first start's initialisation.
exec 3<>/dev/tcp/127.0.0.1/3306 || exit 1
timeout 3 head -c 64 <&3 | grep -aq MariaDB
