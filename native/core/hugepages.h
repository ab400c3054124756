// Making sure huge pages exist for a hugetlbfs storage (Kata's ephemeral hugepages handling).
#pragma once

#include <string>

#include "syserror.h"

namespace kata {

// Makes sure at least `pages` huge pages of `page_kb` KiB exist, through
// <sysfs_root>/kernel/mm/hugepages/hugepages-<page_kb>kB/nr_hugepages. The count is read back
// because the kernel may allocate fewer than asked; a short allocation is undone (the previous
// count written back) and reported through `*allocated` < `pages` with a true return.
bool EnsureHugepages(const std::string& sysfs_root, unsigned long page_kb, unsigned long pages,
                     unsigned long* previous, unsigned long* allocated, SysError* error);

}  // namespace kata
