// Awaiting a store operation from a coroutine: the operation runs on the
// store's thread; the coroutine resumes on its own executor afterwards.
#pragma once

#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

#include "storage/store.h"

namespace tollgate::storage {

template <typename Token = boost::asio::use_awaitable_t<>>
auto async_run(Store& store, Operation&& op, Token&& token = {}) {
  // The operation is owned by the initiation object itself: deferred
  // initiation (use_awaitable) must not hold references to the caller's frame.
  return boost::asio::async_initiate<Token, void(Status)>(
      [&store, op = std::move(op)](auto handler) mutable {
        auto ex = boost::asio::get_associated_executor(handler);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        store.submit(std::move(op), [h, ex](Status s) mutable {
          boost::asio::post(ex, [h, s = std::move(s)]() mutable { (*h)(std::move(s)); });
        });
      },
      token);
}

// async_run for Store::submit_read.
template <typename Token = boost::asio::use_awaitable_t<>>
auto async_run_read(Store& store, Operation&& op, Token&& token = {}) {
  return boost::asio::async_initiate<Token, void(Status)>(
      [&store, op = std::move(op)](auto handler) mutable {
        auto ex = boost::asio::get_associated_executor(handler);
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        store.submit_read(std::move(op), [h, ex](Status s) mutable {
          boost::asio::post(ex, [h, s = std::move(s)]() mutable { (*h)(std::move(s)); });
        });
      },
      token);
}

}  // namespace tollgate::storage
