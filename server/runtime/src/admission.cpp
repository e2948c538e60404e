// One admission policy for every front end (broker_service.hpp, "admission"): the log's disk
// first, then --maxmemory for changes that add work.
#include <conveyor/runtime/broker_service.hpp>

namespace conveyor::server {

broker_service::admission broker_service::admit_change(storage::change_kind kind,
                                                       std::size_t bytes) {
    if (log_ && log_->admit(kind, bytes)) {
        return kind == storage::change_kind::adds ? admission::disk_full : admission::reserve_used;
    }
    if (kind == storage::change_kind::adds && over_maxmemory()) {
        ++counters_.oom_rejections;
        return admission::over_memory;
    }
    return admission::admitted;
}

bool broker_service::adds_refused() {
    return (log_ && log_->space_low()) || over_maxmemory();
}

}  // namespace conveyor::server
