"""`bastion serve --workers N`: N worker processes behind one port, one supervisor.

    supervisor.py   the parent: starts the workers, restarts one that dies (policy.py),
                    forwards signals, and runs the hub
    hub.py          the supervisor's private control app: the state every worker shares
                    (config PUT, isolation), applied on all workers, and the merged
                    metrics page (merge.py)
    worker.py       a worker process: the gateway, plus its private control app
                    (private.py) and its link to the hub and its siblings (siblings.py)
    peers.py        what the control plane sees of all this: one small hook object

The private apps listen on Unix sockets in a 0700 runtime directory the supervisor
creates and names to its children only (protocol.py); nothing new is reachable over
the network.
"""
