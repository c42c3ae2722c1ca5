package io.omai.agent.deviceplugin;

import static org.assertj.core.api.Assertions.assertThat;

import io.grpc.Status;
import io.omai.agent.tenancy.AdmissionRefusal;
import org.junit.jupiter.api.Test;

/** Tenancy refusals reach kubelet as statuses that say the node's state forbids the request, message intact. */
class AdmissionStatusTest {
    @Test
    void refusalsAreFailedPreconditionAndHeldCapacityIsResourceExhausted() {
        assertThat(GrpcStatusMapper.toStatus(new AdmissionRefusal.Ambiguous("pods a/x and b/y"))
                        .getCode())
                .isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(GrpcStatusMapper.toStatus(new AdmissionRefusal.AntiAffinity("tenant 'b' may not share GPU-1"))
                        .getDescription())
                .isEqualTo("tenant 'b' may not share GPU-1");
        assertThat(GrpcStatusMapper.toStatus(new AdmissionRefusal.Withdrawn("GPU-1"))
                        .getCode())
                .isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(GrpcStatusMapper.toStatus(new AdmissionRefusal.NotReserved("k1"))
                        .getCode())
                .isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(GrpcStatusMapper.toStatus(new AdmissionRefusal.Unidentified("none"))
                        .getCode())
                .isEqualTo(Status.Code.FAILED_PRECONDITION);
        assertThat(GrpcStatusMapper.toStatus(new AdmissionRefusal.ReservedForOthers("200 free"))
                        .getCode())
                .isEqualTo(Status.Code.RESOURCE_EXHAUSTED);
    }
}
