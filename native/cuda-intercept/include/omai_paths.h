/*
 * omai_paths.h - where a container finds its OMAI allocation files.
 *
 * The agent's device plugin bind-mounts the allocation directory's two files
 * at these paths in every container it gives a GPU share to:
 *   control  read-only   (the policy: limits, quotas)
 *   usage    read-write  (the shim's per-process slots and totals)
 * and the shim library through a read-only /etc/ld.so.preload.
 *
 * The environment variables are path hints for tests and hosts without the
 * mount: the shim uses them only when the default path does not exist, so a
 * process inside a container cannot point itself at a file of its own making
 * while the agent's mount is there (docs/shim.md, "Configuration").
 * Java mirror: the device plugin must use the same strings.
 */
#ifndef OMAI_PATHS_H
#define OMAI_PATHS_H

#define OMAI_RUN_DIR              "/run/omai"
#define OMAI_CONTROL_FILE_DEFAULT "/run/omai/control"
#define OMAI_USAGE_FILE_DEFAULT   "/run/omai/usage"

#define OMAI_CONTROL_FILE_ENV "OMAI_CONTROL_FILE"
#define OMAI_USAGE_FILE_ENV   "OMAI_USAGE_FILE"

#endif /* OMAI_PATHS_H */
