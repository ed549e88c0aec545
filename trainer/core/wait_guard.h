// WaitGuard: lets a blocking wait give up. Collectives that wait for other ranks poll their
// guard; Check() throws when the job must stop instead of waiting on (a fault notice from a
// peer, a missed deadline). Pure interface.
#pragma once

namespace trainguard {

class WaitGuard {
 public:
  virtual ~WaitGuard() = default;
  // A wait for other ranks begins (every rank calls its collectives, and so this, in the same
  // order). Outside a step it starts the wait's own deadline.
  virtual void BeginWait() {}
  // The wait that began last has completed.
  virtual void EndWait() {}
  // Returns when waiting may go on; throws (PeerError, FaultError) when it must end.
  virtual void Check() = 0;
};

}  // namespace trainguard
