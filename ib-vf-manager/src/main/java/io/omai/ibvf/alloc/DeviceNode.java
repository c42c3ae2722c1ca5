package io.omai.ibvf.alloc;

/**
 * A character device a container needs, in the shape of a kubelet {@code DeviceSpec}: host path, path inside the
 * container and cgroup permissions ({@code rw}: read/write, no mknod).
 */
public record DeviceNode(String hostPath, String containerPath, String permissions) {

    static DeviceNode sameInContainer(String path) {
        return new DeviceNode(path, path, "rw");
    }
}
