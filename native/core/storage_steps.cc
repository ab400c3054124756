#include "storage_steps.h"

#include "beneath.h"

namespace kata {

bool MakeMountPointAndMount(const MountPointSteps& point, const std::string& source,
                            const std::string& fstype, const MountOptions& options, MountApi api,
                            UndoLog* undo, SysError* error) {
  if (!MakeBeneath(point.root, point.rel, point.mode, point.leaf_file, &undo->created, error))
    return false;
  std::string target = point.root == "/" ? "/" + point.rel : point.root + "/" + point.rel;
  MountRequest request;
  request.api = api;
  request.beneath = point.beneath ? point.root.c_str() : nullptr;
  if (!Mount(source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(), options,
             error, request)) {
    return false;
  }
  undo->mounted.push_back(std::move(target));
  return true;
}

}  // namespace kata
