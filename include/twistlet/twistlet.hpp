// Everything twistlet offers except the CAF integration (<twistlet/actor.hpp>, target
// twistlet::actor), which pulls in CAF's headers.
#pragma once

#include <twistlet/tasklet.hpp>
#include <twistlet/channel.hpp>
#include <twistlet/failure.hpp>
#include <twistlet/deferred.hpp>
#include <twistlet/time.hpp>
#include <twistlet/reactor.hpp>
#include <twistlet/bridge.hpp>
#include <twistlet/net.hpp>
#include <twistlet/debug.hpp>
